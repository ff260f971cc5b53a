from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from app.preferences import Preferences, load_preferences, save_preferences
from app.views.frame_view import FrameView, to_qimage
from app.views.training_panel import TrainingPanel
from app.views.verdict_panel import READY_TEXT, VerdictPanel
from core.inference import Decision, VerdictPolicy, decide


def test_to_qimage_copies_bgr_pixels_in_the_right_order() -> None:
    img = np.zeros((4, 6, 3), np.uint8)
    img[1, 2] = (255, 0, 0)  # pure blue in BGR
    q = to_qimage(img)
    img[:] = 0  # the QImage must not share the numpy buffer
    colour = q.pixelColor(2, 1)
    assert (colour.red(), colour.green(), colour.blue()) == (0, 0, 255)
    assert (q.width(), q.height()) == (6, 4)


def test_to_qimage_grey_and_bad_input() -> None:
    grey = np.full((3, 5), 200, np.uint8)
    assert to_qimage(grey).pixelColor(4, 2).red() == 200
    with pytest.raises(ValueError, match="uint8"):
        to_qimage(np.zeros((3, 5), np.float32))


def test_frame_view_paints_the_frame(qtbot: QtBot, tmp_path: Path) -> None:
    view = FrameView()
    qtbot.addWidget(view)
    view.resize(200, 100)
    frame = np.zeros((50, 100, 3), np.uint8)
    frame[:, :, 2] = 255  # red
    view.set_frame(frame)
    shot = view.grab().toImage()
    centre = shot.pixelColor(100, 50)
    assert centre.red() > 200 and centre.green() < 50
    assert view.grab().save(str(tmp_path / "frame.png"))


def test_verdict_panel_shows_decision_and_counts(qtbot: QtBot) -> None:
    panel = VerdictPanel()
    qtbot.addWidget(panel)
    names = ("ok", "scratch")
    panel.set_classes(list(names))
    policy = VerdictPolicy(defect_classes=frozenset({"scratch"}))
    panel.show_verdict(decide(3, [0.1, 0.9], names, policy), np.zeros((20, 20, 3), np.uint8))
    panel.show_verdict(decide(4, [0.95, 0.05], names, policy))
    assert panel.banner.text() == "OK"
    assert panel.tally.decisions[Decision.REJECT] == 1
    assert "Parts: 2" in panel.counts.text()
    assert panel.recent.count() == 2
    assert panel.bars["ok"].value() == 95
    assert "#4" in panel.recent.item(0).text()
    # a new model goes live: the old model's verdict leaves the banner, the counts stay
    panel.show_ready("Model ready: verdicts appear as parts pass.")
    assert panel.banner.text() == READY_TEXT and "Model ready" in panel.detail.text()
    assert "Parts: 2" in panel.counts.text()


def test_training_panel_plots_points_and_cancels(qtbot: QtBot) -> None:
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.start(3, "Adapting")
    for step, loss in enumerate([1.0, 0.5, 0.2], start=1):
        panel.add_point(step, loss)
    assert panel.points() == [(1.0, 1.0), (2.0, 0.5), (3.0, 0.2)]
    with qtbot.waitSignal(panel.cancel_requested, timeout=1000):
        panel.cancel_button.click()
    panel.finish("done")
    assert not panel.cancel_button.isEnabled()
    assert list(panel.curve.getData()[1]) == [1.0, 0.5, 0.2]  # finishing draws what came last


def test_training_panel_redraws_a_burst_of_steps_once(qtbot: QtBot) -> None:
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.start(50, "Adapting")
    redraws: list[object] = []
    panel.curve.sigPlotChanged.connect(redraws.append)
    for step in range(1, 51):  # one adaptation's steps arriving faster than the GUI needs them
        panel.add_point(step, 1 / step)
    assert not redraws and panel.progress.value() == 50
    qtbot.waitUntil(lambda: len(redraws) >= 1, timeout=2000)
    qtbot.wait(100)
    assert len(redraws) == 1 and len(panel.curve.getData()[0]) == 50


def test_preferences_round_trip_and_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "prefs.json"
    prefs = Preferences(source="folder:/data", min_confidence=0.7)
    save_preferences(prefs, path)
    loaded, error = load_preferences(path)
    assert loaded == prefs and error is None
    path.write_text("{not json", encoding="utf-8")
    loaded, error = load_preferences(path)
    assert loaded == Preferences()
    assert error is not None and "could not be read" in error


def test_preferences_refuse_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="min_confidence"):
        Preferences(min_confidence=2.0)
