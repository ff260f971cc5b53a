"""After an adaptation in the window, the Examples view flags the example whose leave-one-out prediction
disagrees with its label (the real shipped model, real workers, a real workspace)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.main import build_window
from app.preferences import Preferences
from app.views.examples_view import FLAG_MARK, FLAGGED
from core.camera.synthetic import render_part
from core.storage import Workspace
from tests.app.workspace_fixtures import SOURCE


def test_a_mislabelled_example_is_flagged_after_adapting_and_relabelling_clears_the_flag(
    qtbot: QtBot, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    ws = Workspace.open(root)
    rng = np.random.default_rng(7)
    for key, name in enumerate(("ok", "spot", "chip"), start=1):
        ws.classes.add(name, is_defect=name != "ok", shortcut=str(key))
        for _ in range(3):
            ws.examples.add(render_part(rng, name, size=128)[0], name)
    wrong = ws.examples.add(render_part(rng, "chip", size=128)[0], "ok").id  # a chipped part called OK
    ws.close()
    prefs = Preferences(source=SOURCE, checkpoint="default", workspace=str(root), device="cpu")
    window = build_window(prefs, Workspace.open(root))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(window.frame_view.has_frame, timeout=30_000)
    view = window.examples
    with qtbot.waitSignal(window.session.adapt_summary, timeout=120_000) as done:
        qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert [w.example_id for w in done.args[0].flagged] == [wrong]
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)  # the Examples tab
    assert window.tabs.currentWidget() is view and view.flagged_ids() == [wrong]
    assert view.flag_note.isVisible() and "1 example may be mislabelled" in view.flag_note.text()
    items = {
        view.list.item(i).data(Qt.ItemDataRole.UserRole): view.list.item(i) for i in range(view.list.count())
    }
    assert len(items) == 10
    marked = [i for i, item in items.items() if item.text().startswith(FLAG_MARK)]
    assert marked == [wrong] and "predicts chip" in items[wrong].toolTip()
    assert "Flagged" not in items[next(i for i in items if i != wrong)].toolTip()
    view.filter.setCurrentIndex(view.filter.findData(FLAGGED))  # only the flagged ones
    assert view.list.count() == 1
    view.list.item(0).setSelected(True)
    view.list.setFocus()
    qtbot.keyClick(view.list, Qt.Key.Key_3)  # relabel as chip
    qtbot.waitUntil(lambda: view.flagged_ids() == [], timeout=5000)
    assert window.session.ws.examples.get(wrong).class_name == "chip"
    assert not view.flag_note.isVisible() and view.filter.findData(FLAGGED) == -1
    assert not any(view.list.item(i).text().startswith(FLAG_MARK) for i in range(view.list.count()))
    window.close()
