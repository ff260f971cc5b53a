"""The check after adapting survives a restart: the window shows the flags and the scores of the live model
version again, those of each version made live, and none (with a message) when the stored check is damaged.

The real shipped model, real workers, a real workspace, parts at 128 px.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.main import build_window
from app.main_window import MainWindow
from app.preferences import Preferences
from app.views.adaptation_view import NO_SUMMARY
from core.camera.synthetic import render_part
from core.station import Station, StationSettings
from core.storage import Workspace
from tests.app.workspace_fixtures import SOURCE

CLASSES = ("ok", "spot", "chip")


def _labelled(root: Path) -> int:
    """Three parts of each class and a chipped part labelled OK; returns the mislabelled example's id."""
    rng = np.random.default_rng(7)
    with Workspace.open(root) as ws:
        for key, name in enumerate(CLASSES, start=1):
            ws.classes.add(name, is_defect=name != "ok", shortcut=str(key))
            for _ in range(3):
                ws.examples.add(render_part(rng, name, size=128)[0], name)
        return ws.examples.add(render_part(rng, "chip", size=128)[0], "ok").id


def _open(qtbot: QtBot, root: Path) -> MainWindow:
    prefs = Preferences(source=SOURCE, checkpoint="default", workspace=str(root), device="cpu")
    window = build_window(prefs, Workspace.open(root))  # restores the live version before returning
    qtbot.addWidget(window)
    window.show()
    return window


def _shown(window: MainWindow) -> tuple[int | None, list[int]]:
    """The version the Adaptation view scores and the example ids the Examples view flags (on its tab)."""
    window.show_tab(1)  # Examples (Ctrl+2): filled when shown
    summary = window.adaptation.summary
    return (summary.version_id if summary else None), window.examples.flagged_ids()


def test_a_restarted_window_shows_the_flags_and_scores_it_showed_before(qtbot: QtBot, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    wrong = _labelled(root)
    window = _open(qtbot, root)
    assert _shown(window) == (None, [])
    qtbot.waitUntil(window.frame_view.has_frame, timeout=30_000)  # shown and running: the shortcut works
    with qtbot.waitSignal(window.session.adapt_summary, timeout=120_000):
        qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    before = window.adaptation.summary
    header = window.adaptation.header.text()
    assert before is not None and _shown(window) == (before.version_id, [wrong])
    window.close()

    window = _open(qtbot, root)
    assert window.adaptation.summary == before and window.adaptation.header.text() == header
    assert _shown(window) == (before.version_id, [wrong])
    assert window.examples.flag_note.isVisible() and window.adaptation.table.rowCount() == len(CLASSES)
    window.close()

    with Workspace.open(root) as ws:  # deleted while the app was closed: no stale flag
        ws.examples.delete(wrong)
    window = _open(qtbot, root)
    assert _shown(window) == (before.version_id, []) and not window.examples.flag_note.isVisible()
    window.close()


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """v1 adapted on clean examples (nothing flagged), v2 after a mislabelled one was added (it is flagged),
    v3 adapted without a check (as a version kept before checks were stored); v3 is live."""
    root = tmp_path_factory.mktemp("versions") / "ws"
    wrong = _labelled(root)
    station = Station(
        Workspace.open(root), StationSettings(source=SOURCE, checkpoint="default", device="cpu")
    )
    station.delete_example(wrong)
    for _ in station.adapt():
        pass
    station.undo()  # the mislabelled example is back
    for _ in station.adapt():
        pass
    station.summarize_after_adapt = False
    for _ in station.adapt():
        pass
    station.close()
    return root, wrong


def test_making_another_version_live_shows_its_check_or_none(
    qtbot: QtBot, tmp_path: Path, versions: tuple[Path, int]
) -> None:
    root = tmp_path / "ws"
    shutil.copytree(versions[0], root)
    wrong = versions[1]
    window = _open(qtbot, root)
    session = window.session
    assert session.station.version.id == 3 and _shown(window) == (None, [])
    assert window.adaptation.header.text() == NO_SUMMARY
    with qtbot.waitSignal(session.adapt_summary, timeout=30_000):
        session.activate(2)
    assert _shown(window) == (2, [wrong])
    window.show_tab(2)  # Models
    with qtbot.waitSignal(session.adapt_summary, timeout=30_000):  # roll back (Ctrl+Backspace) to v1
        qtbot.keyClick(window.models.table, Qt.Key.Key_Backspace, Qt.KeyboardModifier.ControlModifier)
    assert session.station.version.id == 1 and _shown(window) == (1, [])
    assert "<b>Model v1</b>" in window.adaptation.header.text()
    with qtbot.waitSignal(session.adapt_summary, timeout=30_000):
        session.activate(3)
    assert _shown(window) == (None, []) and window.adaptation.table.rowCount() == 0
    assert not window.models.messages.texts()
    window.close()


def test_a_damaged_stored_check_is_not_shown_and_the_line_still_starts(
    qtbot: QtBot, tmp_path: Path, versions: tuple[Path, int]
) -> None:
    root = tmp_path / "ws"
    shutil.copytree(versions[0], root)
    with Workspace.open(root) as ws:
        ws.models.activate(2)
        with ws.transaction() as conn:
            conn.execute('UPDATE model_summaries SET summary = \'{"version_id": 2, "fla\' WHERE model_id = 2')
    window = _open(qtbot, root)
    assert window.session.station.version.id == 2 and window.session.classifier is not None
    assert _shown(window) == (None, [])
    texts = window.models.messages.texts()
    assert len(texts) == 1 and "stored check of model version 2 cannot be read" in texts[0]
    with qtbot.waitSignal(window.session.adapt_summary, timeout=30_000):
        window.session.activate(1)
    assert _shown(window) == (1, [])
    window.close()
