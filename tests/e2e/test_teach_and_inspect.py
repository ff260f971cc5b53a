"""The inspector's whole flow on the synthetic line: teach, adapt, live verdicts, undo, restart."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.main import build_window
from app.main_window import MainWindow
from app.preferences import Preferences
from core.storage import Workspace

SOURCE = "synthetic:seed=4,fps=60,speed=3,defect_rate=0.6"


def _window(qtbot: QtBot, prefs: Preferences) -> MainWindow:
    window = build_window(prefs, Workspace.open(prefs.workspace_path()))
    qtbot.addWidget(window)
    window.show()
    return window


def test_teach_adapt_and_inspect_then_restart(qtbot: QtBot, tmp_path: Path, small_checkpoint: Path) -> None:
    prefs = Preferences(
        source=SOURCE, checkpoint=str(small_checkpoint), workspace=str(tmp_path / "ws"), adapt_steps=3
    )
    window = _window(qtbot, prefs)
    session = window.session
    classes = [c.name for c in session.ws.classes.list()]
    assert {"ok", "scratch", "dent"} <= set(classes)

    # The live view shows real frames.
    qtbot.waitUntil(window.frame_view.has_frame, timeout=15000)

    # Keyboard labelling of the newest part, then undo with Ctrl+Z.
    qtbot.waitUntil(lambda: len(session.recent) > 0, timeout=20000)
    qtbot.keyClick(window, Qt.Key.Key_1)
    assert session.ws.examples.counts().get(classes[0], 0) == 1
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert session.ws.examples.counts().get(classes[0], 0) == 0

    # Teach from the demo line's ground truth: two parts of every class.
    session.start_auto_teach(2)
    qtbot.waitUntil(lambda: session.auto_teach_target == 0, timeout=120000)
    counts = session.ws.examples.counts()
    assert all(counts.get(name, 0) >= 2 for name in classes), counts

    # Adapt in a worker; the GUI stays responsive and shows the result.
    with qtbot.waitSignal(session.adapt_finished, timeout=60000) as finished:
        qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert "is live" in finished.args[0]
    assert window.training.points(), "the adaptation curve got no point"
    version = session.ws.models.active()
    assert version is not None and sorted(version.class_names) == sorted(classes)

    # Live verdicts appear, and every verdict is logged against that model version.
    start = window.verdict.tally.total
    qtbot.waitUntil(lambda: window.verdict.tally.total >= start + 3, timeout=30000)
    assert window.verdict.banner.text() in {"OK", "REJECT", "CHECK BY HAND"}
    window.close()  # flushes the inspection log and releases the workspace lock

    with Workspace.open(tmp_path / "ws") as ws:
        logged = ws.inspections.recent(1000)
        assert len(logged) >= 3
        assert {i.model_id for i in logged} == {version.id}

    # A restart carries on with the adapted model, without adapting again.
    window = _window(qtbot, prefs)
    assert window.session.classifier is not None
    assert sorted(window.session.classifier.class_names) == sorted(classes)
    window.close()


def test_bad_source_and_missing_model_are_reported_not_raised(qtbot: QtBot, tmp_path: Path) -> None:
    prefs = Preferences(
        source="nosuchscheme:1", checkpoint=str(tmp_path / "missing.pt"), workspace=str(tmp_path / "w")
    )
    window = _window(qtbot, prefs)
    # Each message stays with the view it concerns: the model's on the Models tab, the camera's over the
    # live view (it comes from the capture worker, so it arrives a moment later).
    assert any("could not be loaded" in t for t in window.models.messages.texts())
    qtbot.waitUntil(lambda: any("nosuchscheme" in t for t in window.messages.texts()), timeout=5000)
    assert window.messages.isVisibleTo(window)
    with qtbot.waitSignal(window.session.error, timeout=5000) as err:
        window.session.start_capture()
    assert "nosuchscheme" in err.args[0] and "synthetic" in err.args[0]  # names the known schemes
    window.close()


def test_adapting_without_two_labelled_classes_says_what_is_missing(
    qtbot: QtBot, tmp_path: Path, small_checkpoint: Path
) -> None:
    prefs = Preferences(source=SOURCE, checkpoint=str(small_checkpoint), workspace=str(tmp_path / "ws"))
    window = _window(qtbot, prefs)
    with qtbot.waitSignal(window.session.adapt_finished, timeout=20000) as finished:
        window.session.start_adaptation()
    assert "at least two classes" in finished.args[0]
    assert window.session.classifier is None
    window.close()
