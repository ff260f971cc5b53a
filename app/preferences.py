"""User preferences: one readable JSON file in the user's config folder (window geometry lives in QSettings)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from platformdirs import user_config_dir

from core.paths import APP_NAME, default_workspace_path
from core.storage.files import atomic_write_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preferences:
    """What an engineer may change; every field has a safe default so a first launch just works."""

    source: str = "synthetic:seed=1,defect_rate=0.5"
    device: str = "auto"
    checkpoint: str = "default"
    workspace: str = ""
    min_confidence: float = 0.6
    min_margin: float = 0.15
    adapt_steps: int = 10
    display_fps: int = 30

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {self.min_confidence}")
        if not 0.0 <= self.min_margin <= 1.0:
            raise ValueError(f"min_margin must lie in [0, 1], got {self.min_margin}")
        if not 1 <= self.adapt_steps <= 1000:
            raise ValueError(f"adapt_steps must lie in 1..1000, got {self.adapt_steps}")
        if not 1 <= self.display_fps <= 120:
            raise ValueError(f"display_fps must lie in 1..120, got {self.display_fps}")

    def workspace_path(self) -> Path:
        return Path(self.workspace) if self.workspace else default_workspace_path()


def preferences_path() -> Path:
    return Path(user_config_dir(APP_NAME)) / "preferences.json"


def load_preferences(path: Path | None = None) -> tuple[Preferences, str | None]:
    """Read preferences; a missing file gives defaults, a broken one gives defaults and a message saying why."""
    path = path or preferences_path()
    if not path.exists():
        return Preferences(), None
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(Preferences)}
        unknown = sorted(set(data) - known)
        if unknown:
            log.warning("ignoring unknown preference keys %s in %s", unknown, path)
        return replace(Preferences(), **{k: v for k, v in data.items() if k in known}), None
    except (OSError, ValueError, TypeError) as exc:
        return Preferences(), f"Preferences file {path} could not be read ({exc}); using defaults."


def save_preferences(prefs: Preferences, path: Path | None = None) -> None:
    """Write atomically (temp file, fsync, rename) so a crash never leaves half a file.

    Raises
    ------
    core.storage.StorageWriteError
        Disk full, read-only folder or missing permissions.
    """
    path = path or preferences_path()
    atomic_write_bytes(path, json.dumps(asdict(prefs), indent=2).encode("utf-8"))
