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
