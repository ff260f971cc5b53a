"""The GUI face of the anomaly scorer: the unknown-defect verdict, the anomaly map over the part, key N."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.main import build_window
from app.preferences import Preferences
from app.views.frame_view import FrameView
from app.views.teach_panel import TeachPanel
from app.views.verdict_panel import UNKNOWN_DEFECT_COLOUR, UNKNOWN_DEFECT_TEXT, VerdictPanel
from core.camera.trigger import PartCrop
from core.inference import AnomalyScore, Decision, VerdictPolicy, decide
from core.inference.anomaly import anomaly_overlay
from core.inference.pipeline import PartResult
from core.storage import Workspace

NAMES = ("ok", "scratch")
POLICY = VerdictPolicy(defect_classes=frozenset({"scratch"}))


def test_unknown_defect_gets_its_own_banner_colour_and_says_how_far_it_is(qtbot: QtBot) -> None:
    panel = VerdictPanel()
    qtbot.addWidget(panel)
    panel.set_classes(list(NAMES))
    far = AnomalyScore(3.0, 1.0, np.zeros((4, 4), np.float32))
    panel.show_verdict(decide(5, [0.97, 0.03], NAMES, POLICY, anomaly=far))
    assert panel.banner.text() == UNKNOWN_DEFECT_TEXT
    assert UNKNOWN_DEFECT_COLOUR.name() in panel.banner.styleSheet()
    assert "3.0x" in panel.detail.text() and "press N" in panel.detail.text()
    assert panel.tally.decisions[Decision.REJECT] == 1
    # a taught defect keeps the ordinary reject look
    panel.show_verdict(decide(6, [0.1, 0.9], NAMES, POLICY, anomaly=far))
    assert panel.banner.text() == "REJECT"


def test_frame_view_draws_the_anomaly_overlay_into_the_parts_box(qtbot: QtBot) -> None:
    view = FrameView()
    qtbot.addWidget(view)
    view.resize(400, 200)  # the frame fills it at 4x
    frame = np.zeros((50, 100, 3), np.uint8)
    part = np.full((40, 40, 3), 128, np.uint8)
    hot = np.zeros((5, 5), np.float32)
    hot[1:4, 1:4] = 10.0  # patches far past the threshold, in the middle of the part
    overlay = anomaly_overlay(part, AnomalyScore(10.0, 1.0, hot))
    assert overlay.shape == part.shape and overlay.dtype == np.uint8
    assert overlay[20, 20, 2] > 180 and abs(int(overlay[0, 0, 2]) - 128) < 5  # red at the defect only
    view.set_frame(frame, overlays=[((30, 5, 40, 40), overlay)])
    shot = view.grab().toImage()
    inside, outside = shot.pixelColor(200, 100), shot.pixelColor(40, 100)
    assert inside.red() > 150 and outside.red() < 20


def test_key_n_turns_the_newest_part_into_a_new_defect_class(qtbot: QtBot, tmp_path: Path) -> None:
    prefs = Preferences(
        source="synthetic:seed=2,fps=60,speed=3",
        checkpoint=str(tmp_path / "no-model.pt"),  # labelling works without a model
        workspace=str(tmp_path / "ws"),
    )
    window = build_window(prefs, Workspace.open(prefs.workspace_path()))
    qtbot.addWidget(window)
    window.show()
    session = window.session
    qtbot.waitUntil(lambda: len(session.recent) > 0, timeout=20000)
    with qtbot.waitSignal(session.classes_changed, timeout=5000):
        qtbot.keyClick(window, Qt.Key.Key_N)
    made = session.ws.classes.find("new defect 1")
    assert made is not None and made.is_defect
    assert session.ws.examples.counts().get("new defect 1") == 1
    qtbot.keyClick(window, Qt.Key.Key_N)
    assert session.ws.classes.find("new defect 2") is not None
    window.close()


def test_newest_part_shows_its_anomaly_map_until_the_next_part(qtbot: QtBot) -> None:
    panel = TeachPanel()
    qtbot.addWidget(panel)
    part = np.full((60, 60, 3), 128, np.uint8)
    hot = np.zeros((6, 6), np.float32)
    hot[2:4, 2:4] = 10.0
    score = AnomalyScore(10.0, 1.0, hot)
    crop = PartCrop(part_id=7, frame_id=1, timestamp=0.0, box=(0, 0, 60, 60), image=part)
    verdict = decide(7, [1.0], ("ok",), POLICY, anomaly=score)
    panel.show_part(PartResult(crop, verdict, anomaly_overlay(part, score)))
    shown = panel.thumb.pixmap().toImage()
    centre = shown.pixelColor(shown.width() // 2, shown.height() // 2)
    assert centre.red() > 180 and centre.blue() < 100  # the glow, not the grey part
    assert "glow" in panel.thumb_caption.text()
    panel.show_part(PartResult(crop, None))  # a part without a verdict: the plain crop
    plain = panel.thumb.pixmap().toImage()
    assert abs(plain.pixelColor(plain.width() // 2, plain.height() // 2).red() - 128) < 5
