"""The audit log: every label and model change, who made it and when, with before/after values."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from core.storage.records import AuditEntry

if TYPE_CHECKING:
    from core.storage.workspace import Workspace


class AuditLog:
    """Append-only record of changes. Entries are written inside the transaction of the change they record,
    so a change and its audit entry commit (or vanish) together."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def record(
        self,
        conn: sqlite3.Connection,
        action: str,
        entity: str,
        entity_id: int | None,
        details: dict[str, Any] | None = None,
        *,
        who: str | None = None,
    ) -> None:
        """Add an entry using ``conn``, which must be inside the caller's open write transaction."""
        if not conn.in_transaction:
            raise RuntimeError(
                "audit entries must be written inside the transaction of the change they record"
            )
        conn.execute(
            "INSERT INTO audit_log (time, actor, action, entity, entity_id, details) VALUES (?, ?, ?, ?, ?, ?)",
            (time.time(), who or self._ws.user, action, entity, entity_id, json.dumps(details or {})),
        )

    def entries(
        self, *, entity: str | None = None, entity_id: int | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        """Newest first; filter by entity ("example", "model", "class", "inspection") and id."""
        where, params = [], []
        if entity is not None:
            where.append("entity = ?")
            params.append(entity)
        if entity_id is not None:
            where.append("entity_id = ?")
            params.append(entity_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._ws.query(
            f"SELECT id, time, actor, action, entity, entity_id, details FROM audit_log {clause} "
            "ORDER BY id DESC LIMIT ?",
            (*params, int(limit)),
        )
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in rows]
