"""Workspace-wide values kept in the ``meta`` table: JSON by key (the line's set-up, for one)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.storage.workspace import Workspace


class MetaStore:
    """The ``meta`` table: one JSON value per key, written in one transaction (survives a crash)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def get(self, key: str) -> Any | None:
        """The value stored under ``key``; ``None`` when there is none (or it is not valid JSON)."""
        rows = self._ws.query("SELECT value FROM meta WHERE key = ?", (key,))
        if not rows:
            return None
        try:
            return json.loads(rows[0][0])
        except json.JSONDecodeError:
            return None

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (anything JSON can write) under ``key``, replacing what was there.

        Raises
        ------
        ValueError
            ``value`` cannot be written as JSON.
        """
        try:
            text = json.dumps(value, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the value for {key!r} cannot be stored: {exc}") from exc
        with self._ws.transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, text),
            )
