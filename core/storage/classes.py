"""Label classes: name, colour, defect flag, keyboard shortcut and display order."""

from __future__ import annotations

import re
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from core.storage.errors import RecordNotFoundError
from core.storage.records import ClassRecord

if TYPE_CHECKING:
    from core.storage.workspace import Workspace

_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_COLUMNS = "id, name, colour, is_defect, shortcut, position, created_at"


def _row(r: tuple[Any, ...]) -> ClassRecord:
    return ClassRecord(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6])


def _validate(name: str | None, colour: str | None, shortcut: str | None) -> None:
    if name is not None and not name.strip():
        raise ValueError("a class name must not be empty")
    if colour is not None and not _COLOUR.match(colour):
        raise ValueError(f"colour must look like '#RRGGBB', got {colour!r}")
    if shortcut is not None and len(shortcut) != 1:
        raise ValueError(f"a keyboard shortcut is one character, got {shortcut!r}")


class ClassStore:
    """The ``classes`` table."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def add(
        self,
        name: str,
        *,
        colour: str = "#808080",
        is_defect: bool = False,
        shortcut: str | None = None,
        position: int | None = None,
        who: str | None = None,
    ) -> ClassRecord:
        """Create a class. Raises ValueError for an empty/duplicate name or a shortcut already in use."""
        name = name.strip() if isinstance(name, str) else name
        _validate(name, colour, shortcut)
        with self._ws.transaction() as conn:
            if position is None:
                position = conn.execute("SELECT coalesce(max(position) + 1, 0) FROM classes").fetchone()[0]
            try:
                cur = conn.execute(
                    "INSERT INTO classes (name, colour, is_defect, shortcut, position, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (name, colour, int(is_defect), shortcut, position, time.time()),
                )
            except sqlite3.IntegrityError as exc:
                raise ValueError(
                    f"cannot add class {name!r}: the name or shortcut {shortcut!r} is already used ({exc})"
                ) from exc
            class_id = int(cur.lastrowid or 0)
            self._ws.audit.record(
                conn,
                "class.add",
                "class",
                class_id,
                {"name": name, "colour": colour, "is_defect": is_defect, "shortcut": shortcut},
                who=who,
            )
        return self.get(class_id)

    def ensure(self, name: str, **kw: Any) -> ClassRecord:
        """The class called ``name``, created with ``kw`` when missing."""
        found = self.find(name)
        return found if found is not None else self.add(name, **kw)

    def update(self, class_id: int, *, who: str | None = None, **changes: Any) -> ClassRecord:
        """Change ``name``, ``colour``, ``is_defect``, ``shortcut`` or ``position`` of a class."""
        allowed = {"name", "colour", "is_defect", "shortcut", "position"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown class fields {sorted(unknown)}; known: {sorted(allowed)}")
        _validate(changes.get("name"), changes.get("colour"), changes.get("shortcut"))
        before = self.get(class_id)
        if not changes:
            return before
        sets = ", ".join(f"{k} = ?" for k in changes)
        values = [int(v) if k == "is_defect" else v for k, v in changes.items()]
        with self._ws.transaction() as conn:
            try:
                conn.execute(f"UPDATE classes SET {sets} WHERE id = ?", (*values, class_id))
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"cannot update class {before.name!r}: {exc}") from exc
            old = {k: getattr(before, k) for k in changes}
            self._ws.audit.record(
                conn, "class.update", "class", class_id, {"from": old, "to": changes}, who=who
            )
        return self.get(class_id)

    def get(self, class_id: int) -> ClassRecord:
        rows = self._ws.query(f"SELECT {_COLUMNS} FROM classes WHERE id = ?", (class_id,))
        if not rows:
            raise RecordNotFoundError(f"no class with id {class_id} in workspace {self._ws.root}")
        return _row(rows[0])

    def find(self, name: str) -> ClassRecord | None:
        rows = self._ws.query(f"SELECT {_COLUMNS} FROM classes WHERE name = ?", (name.strip(),))
        return _row(rows[0]) if rows else None

    def by_name(self, name: str) -> ClassRecord:
        found = self.find(name)
        if found is None:
            known = [c.name for c in self.list()]
            raise RecordNotFoundError(f"no class named {name!r}; known classes: {known}")
        return found

    def resolve(self, class_ref: int | str) -> ClassRecord:
        """A class given by id or by name."""
        return self.get(class_ref) if isinstance(class_ref, int) else self.by_name(class_ref)

    def list(self) -> list[ClassRecord]:
        """All classes in display order."""
        return [_row(r) for r in self._ws.query(f"SELECT {_COLUMNS} FROM classes ORDER BY position, id")]
