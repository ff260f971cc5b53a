"""Where MetaInspect keeps per-user files: the one definition the app and ``metainspect-lab`` share.

``appauthor=False`` keeps Windows paths one level deep (``%LOCALAPPDATA%\\MetaInspect``) instead of
platformdirs' default ``%LOCALAPPDATA%\\MetaInspect\\MetaInspect``; Linux and macOS are unaffected by it.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "MetaInspect"


def user_data_dir() -> Path:
    """The per-user data folder (``~/.local/share/MetaInspect``, ``%LOCALAPPDATA%\\MetaInspect``)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_workspace_path() -> Path:
    """The default workspace folder: ``workspace`` in :func:`user_data_dir`."""
    return user_data_dir() / "workspace"
