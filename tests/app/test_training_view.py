"""Meta-training from the workstation: a real child process on a real image folder, live curve, use the result."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from app.main import build_window
from app.preferences import Preferences
from core.storage import Workspace
from tests.app.workspace_fixtures import SOURCE


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    """Five classes of eight 28-px grey images: one blob position per class, plus noise."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for c in range(5):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(8):
            img = rng.integers(0, 60, (28, 28), dtype=np.uint8)
            cv2.circle(img, (5 + 4 * c, 14), 4, 255, -1)
            cv2.imwrite(str(folder / f"{i}.png"), img)
    return root


def test_training_runs_in_a_child_process_with_a_live_curve_and_becomes_the_base_model(
    qtbot: QtBot, tmp_path: Path, image_folder: Path, small_checkpoint: Path
) -> None:
    prefs = Preferences(source=SOURCE, checkpoint=str(small_checkpoint), workspace=str(tmp_path / "ws"))
    window = build_window(prefs, Workspace.open(prefs.workspace_path()))
    qtbot.addWidget(window)
    window.show()
    view = window.meta_training
    window.show_tab(next(i for i in range(window.tabs.count()) if window.tabs.tabText(i) == "T&raining"))
    view.data.setText(str(image_folder))
    view.ways.setValue(3)
    view.iterations.setValue(6)
    view.val_every.setValue(0)
    with qtbot.waitSignal(window.session.training_finished, timeout=120_000) as done:
        view.start_button.click()
        assert window.session.busy() == "a training run"
    assert done.args[0].startswith("Training finished"), done.args[0]
    path = Path(done.args[1])
    assert path.is_file() and path.parent == tmp_path / "ws" / "trained"
    assert view.points() == 6 and len(view.loss_curve.getData()[0]) == 6
    assert "Iteration 6 of 6" in view.status.text()
    assert view.use_button.isEnabled()
    with qtbot.waitSignal(window.session.settings_applied, timeout=10_000) as applied:
        view.use_button.click()
    assert "checkpoint" in applied.args[0] and window.session.station.settings.checkpoint == str(path)
    window.close()


def test_training_on_a_missing_folder_says_so_in_the_view(
    qtbot: QtBot, tmp_path: Path, small_checkpoint: Path
) -> None:
    prefs = Preferences(source=SOURCE, checkpoint=str(small_checkpoint), workspace=str(tmp_path / "ws"))
    window = build_window(prefs, Workspace.open(prefs.workspace_path()))
    qtbot.addWidget(window)
    view = window.meta_training
    view.data.setText(str(tmp_path / "nowhere"))
    view.start_button.click()
    assert any("does not exist" in t for t in view.messages.texts())
    assert view.start_button.isEnabled() and window.session.training is None
    window.close()


def test_pre_training_shows_a_live_curve_cancels_and_its_model_becomes_the_workspace_base_model(
    qtbot: QtBot, tmp_path: Path, image_folder: Path, small_checkpoint: Path
) -> None:
    from core.storage.checkpoint import load_checkpoint

    prefs = Preferences(source=SOURCE, checkpoint=str(small_checkpoint), workspace=str(tmp_path / "ws"))
    window = build_window(prefs, Workspace.open(prefs.workspace_path()))
    qtbot.addWidget(window)
    window.confirm_close = lambda what: True  # a failed assertion must not leave a question open on close
    window.show()
    view = window.meta_training
    view.data.setText(str(image_folder))
    view.objective.setCurrentIndex(view.objective.findData("supervised"))
    view.ways.setValue(3)
    view.iterations.setValue(100_000)  # far more than it will run: it is cancelled once the curve moves
    view.start_button.click()
    assert window.session.training.objective == "supervised" and "Pre-training" in view.status.text()
    qtbot.waitUntil(lambda: view.points() >= 2, timeout=120_000)
    steps = view.loss_curve.getData()[0]
    assert len(steps) >= 2 and list(steps) == sorted(steps) and view.cancel_button.isEnabled()
    with qtbot.waitSignal(window.session.training_finished, timeout=60_000) as done:
        view.cancel_button.click()
    assert done.args[0].startswith("Training cancelled"), done.args[0]
    path = Path(done.args[1])
    trained = load_checkpoint(path)  # written when cancelled, as a meta-training run is
    assert trained.provenance["recipe"]["supervised"]["head"] == "linear"
    assert trained.learner.config()["name"] == view.algo.currentText() and trained.preprocess.channels == 1
    assert view.use_button.isEnabled()
    with qtbot.waitSignal(window.session.settings_applied, timeout=10_000):
        view.use_button.click()
    window.close()
    again = build_window(prefs, Workspace.open(prefs.workspace_path()))  # the workspace keeps its base model
    qtbot.addWidget(again)
    assert again.session.station.settings.checkpoint == str(path) and again.session.base is not None
    again.close()
