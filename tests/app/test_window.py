"""The main window around a real session: settings apply at once, camera health, versions, overrides, closing.

Real widgets, real workers, a real workspace; a small untrained model keeps it fast (the shipped model's
accuracy is checked in tests/e2e/test_station_acceptance.py).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtGui import QFontMetrics
from pytestqt.qtbot import QtBot

from app.main import build_window
from app.main_window import MainWindow
from app.preferences import Preferences, load_preferences
from app.session import InspectionSession
from core.inference import Decision
from core.storage import Workspace
from tests.app.workspace_fixtures import SOURCE, log_shift, taught_workspace
from tests.conftest import write_tiny_checkpoint
from tests.core.station.test_station import FlakySource


@pytest.fixture(scope="module")
def taught(tmp_path_factory: pytest.TempPathFactory, small_checkpoint: Path) -> Path:
    root = tmp_path_factory.mktemp("taught") / "ws"
    taught_workspace(root, small_checkpoint)
    return root


def _prefs(tmp_path: Path, taught: Path, checkpoint: Path, **kw: object) -> Preferences:
    shutil.copytree(taught, tmp_path / "ws")
    return Preferences(
        source=SOURCE, checkpoint=str(checkpoint), workspace=str(tmp_path / "ws"), device="cpu", **kw
    )


def _open(qtbot: QtBot, prefs: Preferences) -> MainWindow:
    window = build_window(prefs, Workspace.open(prefs.workspace_path()))
    qtbot.addWidget(window)
    window.show()
    return window


def _fits(label: object, text: str) -> bool:
    return QFontMetrics(label.font()).horizontalAdvance(text) <= label.contentsRect().width()  # type: ignore[attr-defined]


def test_banner_fits_at_the_default_size_and_the_window_does_not_grow(
    qtbot: QtBot, tmp_path: Path, small_checkpoint: Path
) -> None:
    prefs = Preferences(source=SOURCE, checkpoint=str(small_checkpoint), workspace=str(tmp_path / "ws"))
    window = _open(qtbot, prefs)
    qtbot.wait(50)
    size = window.size()
    assert (size.width(), size.height()) == (1280, 800)
    assert window.verdict.banner.text() == "NOT TAUGHT YET" and _fits(window.verdict.banner, "NOT TAUGHT YET")
    window.session.start_auto_teach(1)
    qtbot.waitUntil(lambda: window.session.auto_teach_target == 0, timeout=30000)
    with qtbot.waitSignal(window.session.adapt_finished, timeout=30000):
        window.session.start_adaptation()
    qtbot.waitUntil(lambda: window.verdict.tally.total >= 2, timeout=20000)
    qtbot.wait(50)
    assert window.size() == size  # six confidence bars and a long detail line did not widen or heighten it
    assert _fits(window.verdict.banner, window.verdict.banner.text())
    window.close()


def test_teaching_ok_parts_only_does_not_widen_the_window(qtbot: QtBot, tmp_path: Path) -> None:
    """The OK-only outcome is a long sentence: it neither widens the window nor takes height from the live view."""
    window = _open(qtbot, Preferences(source=SOURCE, checkpoint="default", workspace=str(tmp_path / "ws")))
    qtbot.wait(50)
    size, session, view_height = window.size(), window.session, window.frame_view.height()
    assert view_height > window.training.height()  # the live view dominates the left column
    for _ in range(4):
        qtbot.waitUntil(lambda: len(session.recent) > 0, timeout=20000)
        seen = len(session.recent)
        assert session.label_part(session.recent[-1], "ok")
        qtbot.waitUntil(lambda seen=seen: len(session.recent) > seen, timeout=20000)
    with qtbot.waitSignal(session.adapt_finished, timeout=60000):
        session.start_adaptation()
    assert "good part" in window.training.status.text() == window.training.status.toolTip()
    qtbot.waitUntil(lambda: window.verdict.tally.total >= 2, timeout=30000)
    qtbot.wait(50)
    assert window.size() == size and window.frame_view.height() == view_height
    window.close()


def test_changed_thresholds_and_device_apply_without_restart(
    qtbot: QtBot, tmp_path: Path, taught: Path, small_checkpoint: Path
) -> None:
    window = _open(qtbot, _prefs(tmp_path, taught, small_checkpoint))
    session = window.session
    assert session.classifier is not None
    qtbot.waitUntil(lambda: window.verdict.tally.total >= 1, timeout=20000)
    new = replace(session.prefs, min_confidence=0.99, min_margin=0.9, device="auto")
    with qtbot.waitSignal(session.settings_applied, timeout=10000) as applied:
        window.apply_preferences(new)
    assert {"min_confidence", "min_margin", "device"} <= set(applied.args[0])
    assert session.classifier.policy.min_confidence == 0.99 and session.station.settings.device == "auto"
    assert load_preferences()[0].min_confidence == 0.99  # saved for the next start too
    seen = window.verdict.tally.total
    qtbot.waitUntil(lambda: window.verdict.tally.total >= seen + 2, timeout=20000)
    latest = session.recent[-1].verdict
    assert (
        latest is not None and latest.decision is Decision.CHECK
    )  # nothing an untrained model says is 99 % sure
    window.close()


def test_a_failing_camera_shows_reconnecting_and_recovers(
    qtbot: QtBot, tmp_path: Path, small_checkpoint: Path
) -> None:
    prefs = Preferences(source="flaky:", checkpoint=str(small_checkpoint), workspace=str(tmp_path / "ws"))
    session = InspectionSession(
        prefs, Workspace.open(tmp_path / "ws"), open_source=lambda spec: FlakySource()
    )
    window = MainWindow(session)
    qtbot.addWidget(window)
    window.show()
    session.start_capture()
    qtbot.waitUntil(lambda: window.camera_banner.isVisible(), timeout=15000)
    assert "reconnecting" in window.camera_banner.text() and "cable pulled" in window.camera_banner.text()
    assert "reconnecting" in window.camera_label.text()
    qtbot.waitUntil(lambda: window.camera_label.text().startswith("Camera running"), timeout=15000)
    assert not window.camera_banner.isVisible()
    window.close()


def test_rollback_and_a_history_correction_through_the_window(
    qtbot: QtBot, tmp_path: Path, taught: Path, small_checkpoint: Path
) -> None:
    prefs = _prefs(tmp_path, taught, small_checkpoint)
    with Workspace.open(prefs.workspace_path()) as ws:
        log_shift(ws)
    window = _open(qtbot, prefs)
    session = window.session
    assert session.station.version.id == 2
    window.show_tab(2)  # Models (Ctrl+3)
    assert window.models.table.item(0, 1).text().endswith("live")
    with qtbot.waitSignal(session.version_changed, timeout=10000):
        session.rollback()
    assert session.station.version.id == 1 and session.ws.models.active().id == 1
    live_rows = [r for r in range(window.models.table.rowCount()) if window.models.table.item(r, 1).text()]
    assert [window.models.table.item(r, 0).text() for r in live_rows] == ["v1"]

    window.show_tab(3)  # History
    window.history.period.setCurrentText("All")
    window.history.verdict.setCurrentText("REJECT")
    window.history.table.selectRow(0)
    part = window.history.selected()
    before = session.ws.examples.counts()["crack"]
    window.history.correct_to.setCurrentText("crack")
    window.history.correct_button.click()
    assert session.ws.examples.counts()["crack"] == before + 1
    assert session.ws.inspections.get(part.id).override == "crack"
    row = [r.id for r in window.history._rows].index(part.id)  # live parts keep arriving above it
    assert window.history.table.item(row, 6).text() == "crack"
    window.close()


@pytest.fixture(scope="module")
def slow_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MAML checkpoint: its adaptation takes real gradient steps, so it is still running when we close."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("slow") / "maml.pt", "maml", n_way=6)


def test_closing_while_adapting_asks_then_stops_the_worker(
    qtbot: QtBot, tmp_path: Path, taught: Path, slow_checkpoint: Path
) -> None:
    window = _open(qtbot, _prefs(tmp_path, taught, slow_checkpoint, adapt_steps=1000))
    session = window.session
    asked: list[str] = []
    window.confirm_close = lambda what: asked.append(what) or False
    session.start_adaptation()
    # Polled, not waitSignal: adapt_progress fires many times from the worker, and a queued emission that
    # reaches waitSignal's slot after it disconnected crashed PySide6 6.12 (segfault in _quit_loop_by_signal).
    qtbot.waitUntil(lambda: len(window.training.points()) > 0, timeout=20000)
    window.close()
    assert asked == ["an adaptation"] and window.isVisible() and session.adapting()
    window.confirm_close = lambda what: True
    start = time.monotonic()
    window.close()
    assert not window.isVisible() and not session.adapting()
    assert time.monotonic() - start < 10
    with Workspace.open(tmp_path / "ws") as ws:  # the lock was released: the session closed cleanly
        assert ws.models.active().id == 2  # the cancelled adaptation left the live version alone


def test_dragging_a_region_on_the_live_view_sets_the_trigger_roi_now_and_the_workspace_keeps_it_and_the_base_model(
    qtbot: QtBot, tmp_path: Path, small_checkpoint: Path
) -> None:
    from PySide6.QtCore import QPoint, QSettings, Qt

    prefs = Preferences(source=SOURCE, checkpoint=str(small_checkpoint), workspace=str(tmp_path / "ws"))
    window = _open(qtbot, prefs)
    qtbot.waitUntil(window.frame_view.has_frame, timeout=15000)
    overlay = window.roi_overlay
    window.start_roi_editing()
    assert overlay.editing
    target = window.frame_view._target()  # the frame (320x240) letter-boxed in the view
    scale = target.width() / 320
    a = QPoint(int(target.x() + 40 * scale), int(target.y() + 30 * scale))
    b = QPoint(int(target.x() + 280 * scale), int(target.y() + 210 * scale))
    qtbot.mousePress(overlay, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseRelease(overlay, Qt.MouseButton.LeftButton, pos=b)
    roi = window.session.station.settings.roi
    assert roi is not None and not overlay.editing
    assert all(abs(v - e) <= 2 for v, e in zip(roi, (40, 30, 240, 180), strict=True)), roi
    qtbot.waitUntil(lambda: window.session.station._pipeline.trigger.roi == roi, timeout=5000)  # next frame
    window.close()

    QSettings().clear()  # the region is kept in the workspace, not with the window's settings
    other = write_tiny_checkpoint(tmp_path / "trained.pt")
    window = _open(qtbot, prefs)
    assert window.session.station.settings.roi == roi and window.roi_overlay.roi == roi
    window.use_trained_model(str(other))  # the Training view's "Use as base model"
    assert window.session.wait_model_task()
    window.close()

    window = _open(qtbot, replace(prefs, checkpoint="default"))  # the workspace's base model wins
    assert window.session.station.settings.checkpoint == str(other) == window.session.prefs.checkpoint
    assert window.session.station.settings.roi == roi
    window.clear_roi()
    assert window.session.station.settings.roi is None
    window.close()


def test_image_files_dropped_on_the_examples_become_examples_of_the_class_shown(
    qtbot: QtBot, tmp_path: Path, small_checkpoint: Path
) -> None:
    import cv2
    import numpy as np
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    prefs = Preferences(source=SOURCE, checkpoint=str(small_checkpoint), workspace=str(tmp_path / "ws"))
    window = _open(qtbot, prefs)
    view = window.examples
    window.show_tab(1)
    files = []
    for i in range(2):
        path = tmp_path / f"part{i}.png"
        cv2.imwrite(str(path), np.full((40, 40, 3), 60 + 40 * i, np.uint8))
        files.append(path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in [*files, broken]])

    def drop() -> None:
        event = QDropEvent(
            QPointF(10, 10),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
        )
        view.dropEvent(event)

    drop()  # no class chosen yet: nothing is added, the view says what to do
    assert window.session.ws.examples.counts()["dent"] == 0
    assert any("Choose the class" in t for t in view.messages.texts())
    view.filter.setCurrentIndex(view.filter.findData("dent"))
    drop()
    assert window.session.ws.examples.counts()["dent"] == 2
    assert any("broken.png" in t for t in window.teach_messages.texts())
    qtbot.waitUntil(lambda: view.list.count() == 2, timeout=5000)
    window.close()
