"""Start-up as the app does it: the camera first, the models loaded in a worker (build_window's background mode).

Real widgets, real workers, a real workspace taught with a small model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pytestqt.qtbot import QtBot

from app.main import build_window
from app.preferences import Preferences
from core.storage import Workspace
from tests.app.workspace_fixtures import SOURCE, taught_workspace


def test_live_frames_come_before_the_model_and_verdicts_resume_once_it_is_loaded(
    qtbot: QtBot, tmp_path: Path, small_checkpoint: Path
) -> None:
    taught_workspace(tmp_path / "taught", small_checkpoint)
    shutil.copytree(tmp_path / "taught", tmp_path / "ws")
    prefs = Preferences(
        source=SOURCE, checkpoint=str(small_checkpoint), workspace=str(tmp_path / "ws"), device="cpu"
    )
    window = build_window(prefs, Workspace.open(prefs.workspace_path()), load_in_background=True)
    qtbot.addWidget(window)
    window.show()
    session = window.session
    warnings: list[str] = []
    session.message.connect(lambda m: warnings.append(m.text) if m.level == "warning" else None)
    if session.model_loading():  # Adapt pressed before the model is in is refused with a message
        session.start_adaptation()
        assert not session.adapting() and any("still loading" in w for w in warnings)
    qtbot.waitUntil(window.frame_view.has_frame, timeout=20000)
    qtbot.waitUntil(lambda: not session.model_loading(), timeout=60000)
    assert session.classifier is not None and session.base is not None  # the live version restored, base in
    assert session.station.version is not None
    qtbot.waitUntil(lambda: window.verdict.tally.total >= 1, timeout=20000)
    window.close()
