"""The line's set-up kept in the workspace: the base model taught from, the region of interest and the part
trigger. Changed with ``Station.apply_settings`` (saved there), restored when a station opens the workspace,
so a restart, or another PC opening the same workspace, carries on with the same line.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from core.station.settings import StationSettings
from core.storage import Workspace

log = logging.getLogger(__name__)

SETUP_FIELDS = ("checkpoint", "roi", "crop_size", "trigger_threshold")
SETUP_KEY = "station.setup"


def saved_setup(ws: Workspace) -> dict[str, Any]:
    """The set-up fields the workspace holds (none before the first change)."""
    value = ws.meta.get(SETUP_KEY)
    if not isinstance(value, dict):
        return {}
    saved = {k: v for k, v in value.items() if k in SETUP_FIELDS}
    if isinstance(saved.get("roi"), list):
        saved["roi"] = tuple(saved["roi"])
    return saved


def restore_setup(ws: Workspace, settings: StationSettings) -> StationSettings:
    """``settings`` with the workspace's saved set-up in place of its own (a saved value the settings refuse
    is skipped, with a warning in the log)."""
    saved = saved_setup(ws)
    try:
        return replace(settings, **saved)
    except (TypeError, ValueError) as exc:
        log.warning("the workspace's saved line set-up %s is not usable (%s); using the defaults", saved, exc)
        return settings


def save_setup(ws: Workspace, settings: StationSettings) -> None:
    """Keep the set-up fields of ``settings`` in the workspace.

    Raises
    ------
    StorageError
        The workspace cannot be written (disk full, read-only).
    """
    ws.meta.set(SETUP_KEY, {name: getattr(settings, name) for name in SETUP_FIELDS})
