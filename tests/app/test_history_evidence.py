"""History: a selected part shows its evidence (the judging model version, the nearest labelled examples),
found in a worker; real window, real session, a real workspace."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.main import build_window
from app.preferences import Preferences
from core.storage import NewInspection, Workspace
from tests.app.workspace_fixtures import SOURCE, taught_workspace


@pytest.fixture(scope="module")
def taught(tmp_path_factory: pytest.TempPathFactory, small_checkpoint: Path) -> Path:
    root = tmp_path_factory.mktemp("taught") / "ws"
    taught_workspace(root, small_checkpoint)
    return root


def test_a_selected_part_shows_its_model_version_and_nearest_examples(
    qtbot: QtBot, tmp_path: Path, taught: Path, small_checkpoint: Path
) -> None:
    shutil.copytree(taught, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as ws:
        version = ws.models.active()
        seen = ws.examples.list("dent")[0]  # this example's very image passes the camera again
        ws.inspections.append(
            NewInspection("dent", "REJECT", (0.5,) * 6, time=1.0, part_id=7, model_id=version.id),
            ws.examples.load_image(seen),
        )
        ws.inspections.append(NewInspection("ok", "OK", (0.5,) * 6, time=2.0, part_id=8, model_id=version.id))
    prefs = Preferences(
        source=SOURCE, checkpoint=str(small_checkpoint), workspace=str(tmp_path / "ws"), device="cpu"
    )
    window = build_window(prefs, Workspace.open(tmp_path / "ws"))
    qtbot.addWidget(window)
    window.show()
    window.session.stop_capture()  # only the parts logged above: no live part joins the log
    view = window.history
    window.show_tab(3)
    view.period.setCurrentText("All")
    view.verdict.setCurrentText("REJECT")
    assert [r.part_id for r in view._rows] == [7]
    with qtbot.waitSignal(window.session.evidence_ready, timeout=30_000) as found:
        view.table.selectRow(0)
    assert "Finding" in view.evidence_title.text() or found.args[0].inspection_id == view.selected().id
    qtbot.waitUntil(lambda: view.evidence.count() == 3, timeout=5000)
    assert (
        f"model v{version.id}" in view.evidence_title.text()
        and "12 labelled examples" in view.evidence_title.text()
    )
    first = view.evidence.item(0)
    assert first.text() == f"dent #{seen.id}\n0.00" and not first.icon().isNull()
    assert "distance 0.000" in first.toolTip()
    distances = [float(view.evidence.item(i).text().rsplit("\n", 1)[1]) for i in range(3)]
    assert distances == sorted(distances) and distances[2] > 0

    view.verdict.setCurrentText("OK")  # an OK part keeps no image: no evidence asked for, none shown
    with qtbot.assertNotEmitted(window.session.evidence_ready, wait=300):
        view.table.selectRow(0)
    assert view.selected().part_id == 8 and view.evidence.count() == 0
    window.close()
