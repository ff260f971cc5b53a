"""Each workstation view with real widgets on a real workspace (SQLite, image files, adapted model versions)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.views.examples_view import ExamplesView
from app.views.history_view import HistoryView
from app.views.message_bar import MessageBar
from app.views.models_view import ModelsView
from app.views.review_view import ReviewView
from app.views.shift_view import ShiftView
from core.storage import Workspace
from tests.app.workspace_fixtures import log_shift, taught_workspace


@pytest.fixture(scope="module")
def taught(tmp_path_factory: pytest.TempPathFactory, small_checkpoint: Path) -> Path:
    root = tmp_path_factory.mktemp("taught") / "ws"
    taught_workspace(root, small_checkpoint)
    return root


@pytest.fixture()
def ws(taught: Path, tmp_path: Path) -> Workspace:
    """A private copy of the taught workspace (tests change it)."""
    import shutil

    shutil.copytree(taught, tmp_path / "ws")
    workspace = Workspace.open(tmp_path / "ws")
    yield workspace
    workspace.close()


def test_models_view_lists_versions_with_parent_and_live_and_activates_by_key(
    qtbot: QtBot, ws: Workspace
) -> None:
    view = ModelsView()
    qtbot.addWidget(view)
    view.refresh(ws)
    assert view.table.rowCount() == 2
    assert view.table.item(0, 0).text() == "v2" and view.table.item(0, 4).text() == "v1"  # newest first
    assert "live" in view.table.item(0, 1).text() and view.table.item(1, 1).text() == ""
    assert view.table.item(0, 3).text() == "12"  # examples used by v2
    assert view.rollback_button.isEnabled() and "v1" in view.summary.text()
    view.show()
    view.table.selectRow(1)
    view.table.setFocus()
    with qtbot.waitSignal(view.activate_requested) as activated:
        qtbot.keyClick(view.table, Qt.Key.Key_Return)
    assert activated.args == [1]
    with qtbot.waitSignal(view.rollback_requested):
        qtbot.keyClick(view.table, Qt.Key.Key_Backspace, Qt.KeyboardModifier.ControlModifier)


def test_history_filters_by_verdict_class_and_time_and_offers_a_correction(
    qtbot: QtBot, ws: Workspace
) -> None:
    log_shift(ws)
    view = HistoryView()
    qtbot.addWidget(view)
    view.refresh(ws)
    assert view.period.currentText() == "Last hour" and view.table.rowCount() == 6
    view.period.setCurrentText("All")
    assert view.table.rowCount() == 7
    view.verdict.setCurrentText("REJECT")
    assert view.table.rowCount() == 2 and {view.table.item(r, 3).text() for r in range(2)} == {
        "scratch",
        "dent",
    }
    view.verdict.setCurrentIndex(0)
    view.predicted.setCurrentText("ok")
    assert view.table.rowCount() == 4
    view.period.setCurrentText("Last hour")
    assert view.table.rowCount() == 3  # the part 3 hours ago is out
    view.predicted.setCurrentIndex(0)
    view.verdict.setCurrentText("CHECK")
    view.table.selectRow(0)
    assert "Part 105" in view.detail.text() and "model v2" in view.detail.text()
    assert view.image.pixmap() is not None and not view.image.pixmap().isNull()  # the kept image
    view.correct_to.setCurrentText("crack")
    with qtbot.waitSignal(view.override_requested) as asked:
        view.correct_button.click()
    assert asked.args == [view.selected().id, "crack"]


def test_review_queue_confirms_with_enter_and_relabels_with_a_class_key(qtbot: QtBot, ws: Workspace) -> None:
    log_shift(ws)
    view = ReviewView()
    qtbot.addWidget(view)
    view.refresh(ws)
    assert view.list.count() == 2 and "2 parts" in view.header.text()
    view.show()
    view.list.setFocus()
    view.list.setCurrentRow(0)
    first = view._ids[0]
    with qtbot.waitSignal(view.override_requested) as confirmed:
        qtbot.keyClick(view.list, Qt.Key.Key_Return)
    assert confirmed.args == [first[0], first[1]]  # the model's own class
    view.list.setCurrentRow(1)
    dent_key = next(c.shortcut for c in ws.classes.list() if c.name == "dent")
    with qtbot.waitSignal(view.override_requested) as relabelled:
        qtbot.keyClick(view.list, getattr(Qt.Key, f"Key_{dent_key}"))
    assert relabelled.args == [view._ids[1][0], "dent"]


def test_shift_view_plots_counts_and_defect_rate_from_the_log_after_a_restart(
    qtbot: QtBot, ws: Workspace
) -> None:
    counts = log_shift(ws)
    root = ws.root
    ws.close()
    with Workspace.open(root) as reopened:  # read from the log: a restart loses nothing
        view = ShiftView()
        qtbot.addWidget(view)
        view.refresh(reopened)
    series = view.series
    assert series is not None and sum(series.totals.values()) == sum(counts.values())
    assert series.totals["ok"] == 4 and series.totals["scratch"] == 1
    assert max(series.defect_rate) > 0
    assert len(view.counts_plot.listDataItems()) == len(series.counts)
    assert len(view.rate_plot.listDataItems()) == 1
    assert "7 parts" in view.totals.text()


def test_examples_view_shows_thumbnails_per_class_relabels_by_key_and_deletes(
    qtbot: QtBot, ws: Workspace
) -> None:
    view = ExamplesView()
    qtbot.addWidget(view)
    view.refresh(ws)
    assert view.list.count() == 12
    view.filter.setCurrentIndex(view.filter.findData("scratch"))
    assert view.list.count() == 2 and all("scratch" in view.list.item(i).text() for i in range(2))
    view.show()
    view.list.setFocus()
    view.list.item(0).setSelected(True)
    chip_key = next(c.shortcut for c in ws.classes.list() if c.name == "chip")
    with qtbot.waitSignal(view.relabel_requested) as relabel:
        qtbot.keyClick(view.list, getattr(Qt.Key, f"Key_{chip_key}"))
    assert relabel.args[1] == "chip" and len(relabel.args[0]) == 1
    with qtbot.waitSignal(view.delete_requested) as delete:
        qtbot.keyClick(view.list, Qt.Key.Key_Delete)
    assert delete.args[0] == relabel.args[0]


def test_message_bar_keeps_messages_until_dismissed_and_counts_repeats(qtbot: QtBot) -> None:
    bar = MessageBar()
    qtbot.addWidget(bar)
    bar.show()
    bar.show_message("Camera lost")
    bar.show_message("Camera lost")
    bar.show_message("Disk full", "warning")
    qtbot.wait(50)
    assert bar.isVisible() and bar.texts() == ["Camera lost", "Disk full"]
    row = bar._rows[0]
    assert "×2" in row.label.text()
    row.close_button.click()
    assert bar.texts() == ["Disk full"]
    bar._rows[0].close_button.click()
    assert not bar.isVisible()


def test_the_message_bar_never_shows_a_camera_password(qtbot: QtBot) -> None:
    bar = MessageBar()
    qtbot.addWidget(bar)
    bar.show_message("These settings cannot be trained: source 'rtsp://op:hunter2@10.0.0.7/s' is offline")
    assert bar.texts() == ["These settings cannot be trained: source 'rtsp://***@10.0.0.7/s' is offline"]
    assert "hunter2" not in bar._rows[0].label.text()


def test_adaptation_view_shows_per_class_scores_and_the_wrong_examples(qtbot: QtBot, ws: Workspace) -> None:
    from app.views.adaptation_view import AdaptationView
    from core.station.summary import AdaptSummary, ClassScore, WrongExample

    example = ws.examples.list("dent")[0]
    summary = AdaptSummary(
        2,
        "train",
        (ClassScore("dent", 2, 1), ClassScore("ok", 2, 2)),
        (WrongExample(example.id, "dent", "ok", 0.7),),
    )
    view = AdaptationView()
    qtbot.addWidget(view)
    view.show_summary(summary, ws)
    assert "v2" in view.header.text() and "75%" in view.header.text() and "without it" in view.header.text()
    assert view.table.rowCount() == 2 and view.table.item(0, 3).text() == "50%"
    assert view.wrong.count() == 1 and "model says ok" in view.wrong.item(0).text()
    assert not view.wrong.item(0).icon().isNull()


def test_examples_view_moves_the_selection_to_hold_out_with_h(qtbot: QtBot, ws: Workspace) -> None:
    view = ExamplesView()
    qtbot.addWidget(view)
    view.refresh(ws)
    view.show()
    view.list.setFocus()
    view.list.item(0).setSelected(True)
    with qtbot.waitSignal(view.split_requested) as moved:
        qtbot.keyClick(view.list, Qt.Key.Key_H)
    assert moved.args[1] == "holdout" and len(moved.args[0]) == 1
    ws.examples.set_split(moved.args[0][0], "holdout")
    view.refresh(ws)
    with qtbot.waitSignal(view.split_requested) as back:
        view.list.item(0).setSelected(True)
        qtbot.keyClick(view.list, Qt.Key.Key_H)
    assert back.args == [moved.args[0], "train"]
