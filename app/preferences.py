"""User preferences: one readable JSON file in the user's config folder (window geometry lives in QSettings)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from platformdirs import user_config_dir

from core.config import DEFAULT_ADAPT_STEPS, DEFAULT_MIN_CONFIDENCE, DEFAULT_MIN_MARGIN
from core.paths import APP_NAME, default_workspace_path
from core.runtime import resolve_device
from core.station.settings import check_verdict_settings
from core.storage.files import atomic_write_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preferences:
    """What an engineer may change; every field has a safe default so a first launch just works."""

    source: str = "synthetic:seed=1,defect_rate=0.5"
    device: str = "auto"
    checkpoint: str = "default"
    workspace: str = ""
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    min_margin: float = DEFAULT_MIN_MARGIN
    adapt_steps: int = DEFAULT_ADAPT_STEPS or 0  # 0: the model's own number of steps
    display_fps: int = 30

    def __post_init__(self) -> None:
        check_verdict_settings(self.min_confidence, self.min_margin, self.adapt_steps)
        if not 1 <= self.display_fps <= 120:
            raise ValueError(f"display_fps must lie in 1..120, got {self.display_fps}")
        for name in ("source", "checkpoint", "workspace"):
            if "\x00" in getattr(self, name):  # no path or device name may hold one: the app could not start
                raise ValueError(f"{name} holds a NUL character")

    def workspace_path(self) -> Path:
        return Path(self.workspace) if self.workspace else default_workspace_path()


def preferences_path() -> Path:
    return Path(user_config_dir(APP_NAME)) / "preferences.json"


def _checked(data: Any, path: Path) -> Preferences:
    """Preferences from a parsed file; raises ValueError (naming the field) for anything unusable."""
    if not isinstance(data, dict):
        raise ValueError(f"it holds a JSON {type(data).__name__}, not an object")
    known = {f.name for f in fields(Preferences)}
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        log.warning("ignoring unknown preference keys %s in %s", unknown, path)
    values = {k: v for k, v in data.items() if k in known}
    for name, value in values.items():
        kind = type(getattr(Preferences(), name))
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            raise ValueError(f"{name} is {value!r}, not a {kind.__name__}")
    return replace(Preferences(), **values)


def _usable_device(prefs: Preferences) -> tuple[Preferences, str | None]:
    """A device this PC has: ``cuda`` on a PC without CUDA (the file may come from another PC) runs on the CPU."""
    try:
        resolve_device(prefs.device)
    except ValueError as exc:
        fallback = "cpu" if prefs.device.strip().lower().startswith("cuda") else "auto"
        return replace(prefs, device=fallback), f"{exc}; running on device {fallback!r} instead."
    return prefs, None


def load_preferences(path: Path | None = None) -> tuple[Preferences, str | None]:
    """Read preferences; a missing file gives defaults, an unusable one gives defaults and a message saying why.

    An unusable file (not JSON, not an object, a value of the wrong type or out of range) is renamed to
    ``preferences.json.bad`` beside it, so the user's text is kept for them to fix and the next start is
    clean. A device this PC lacks falls back to the CPU for this run only (the file is left as it is).
    """
    path = path or preferences_path()
    if not path.exists():
        return _usable_device(Preferences())
    try:
        raw = path.read_bytes()
    except OSError as exc:  # unreadable now (permissions, a network drive): left alone, not renamed
        return _usable_device(Preferences())[
            0
        ], f"Preferences file {path} could not be read ({exc}); using defaults."
    try:
        prefs = _checked(json.loads(raw.decode("utf-8")), path)
    except (ValueError, TypeError, RecursionError) as exc:
        bad = path.with_name(path.name + ".bad")
        try:
            os.replace(path, bad)
            kept = f"it was kept as {bad}"
        except OSError as move_exc:
            kept = f"it could not be renamed to {bad} ({move_exc})"
        message = f"Preferences file {path} could not be read ({exc}); using defaults ({kept})."
        return _usable_device(Preferences())[0], message
    return _usable_device(prefs)


def save_preferences(prefs: Preferences, path: Path | None = None) -> None:
    """Write atomically (temp file, fsync, rename) so a crash never leaves half a file.

    Raises
    ------
    core.storage.StorageWriteError
        Disk full, read-only folder or missing permissions.
    """
    path = path or preferences_path()
    atomic_write_bytes(path, json.dumps(asdict(prefs), indent=2).encode("utf-8"))
