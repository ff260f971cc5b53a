"""One definition of the per-user data folder: the app and metainspect-lab open the same workspace."""

from __future__ import annotations

import os
from pathlib import Path

from app.preferences import Preferences
from core import paths
from core.storage import default_workspace_path


def test_app_and_core_agree_on_the_default_workspace() -> None:
    expected = Path(os.environ["XDG_DATA_HOME"]) / "MetaInspect" / "workspace"  # set per test in conftest
    assert Preferences().workspace_path() == expected
    assert default_workspace_path() == expected
    assert paths.default_workspace_path() == expected


def test_an_explicit_workspace_wins(tmp_path: Path) -> None:
    assert Preferences(workspace=str(tmp_path)).workspace_path() == tmp_path
