"""Labelled examples: add, relabel, soft-delete, undo/redo, list by class, load images."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from core.redact import redact_source
from core.storage.errors import RecordNotFoundError
from core.storage.records import Example, LabelChange, Roi, Split

if TYPE_CHECKING:
    from core.storage.workspace import Workspace

_SELECT = (
    "SELECT e.id, e.image_hash, e.class_id, c.name, e.source, e.camera_settings, e.roi, e.created_at, "
    "e.created_by, e.split, e.deleted_at FROM examples e JOIN classes c ON c.id = e.class_id"
)
_SPLITS = ("train", "holdout")
UNDO_DEPTH = 200


def _row(r: tuple[Any, ...]) -> Example:
    roi: Roi | None = None
    if r[6]:
        x, y, w, h = json.loads(r[6])
        roi = (x, y, w, h)
    return Example(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), roi, r[7], r[8], r[9], r[10])


def _check_roi(roi: Roi | None) -> str | None:
    if roi is None:
        return None
    values = tuple(int(v) for v in roi)
    if len(values) != 4 or values[2] <= 0 or values[3] <= 0 or values[0] < 0 or values[1] < 0:
        raise ValueError(f"roi must be (x, y, width, height) with x, y >= 0 and positive size, got {roi}")
    return json.dumps(values)


class ExampleStore:
    """The ``examples`` table. Label changes made here can be undone and redone (per open workspace),
    and every change, undo and redo included, is written to the audit log."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._undo: list[LabelChange] = []
        self._redo: list[LabelChange] = []
        self._history_lock = threading.Lock()

    # ---- changes -----------------------------------------------------------------------------------------
    def add(
        self,
        image: np.ndarray | bytes,
        class_ref: int | str,
        *,
        source: str = "",
        camera_settings: Mapping[str, Any] | None = None,
        roi: Roi | None = None,
        split: Split = "train",
        who: str | None = None,
        undoable: bool = True,
    ) -> Example:
        """Store ``image`` (OpenCV uint8 grey/BGR array or encoded bytes) labelled as ``class_ref``.

        The image file is written and fsynced before the row commits; when this returns, the label survives
        a crash or power cut. ``undoable=False`` keeps bulk imports out of the Ctrl+Z history.
        """
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
        roi_json = _check_roi(roi)
        settings = json.dumps(dict(camera_settings or {}), sort_keys=True, default=str)
        cls = self._ws.classes.resolve(class_ref)
        image_hash = self._ws.images.put(image)
        with self._ws.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO examples (image_hash, class_id, source, camera_settings, roi, created_at, "
                "created_by, split) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    image_hash,
                    cls.id,
                    redact_source(source),
                    settings,
                    roi_json,
                    time.time(),
                    who or self._ws.user,
                    split,
                ),
            )
            example_id = int(cur.lastrowid or 0)
            self._ws.audit.record(
                conn, "example.add", "example", example_id, {"class": cls.name, "image": image_hash}, who=who
            )
        if undoable:
            self._push(LabelChange("add", example_id, None, cls.id))
        return self.get(example_id)

    def relabel(self, example_id: int, class_ref: int | str, *, who: str | None = None) -> Example:
        """Give a live example another class."""
        before = self.get(example_id)
        cls = self._ws.classes.resolve(class_ref)
        if cls.id == before.class_id:
            return before
        self._set_class(example_id, before.class_id, cls.id, "example.relabel", who)
        self._push(LabelChange("relabel", example_id, before.class_id, cls.id))
        return self.get(example_id)

    def delete(self, example_id: int, *, who: str | None = None) -> Example:
        """Soft-delete: the row and image stay (for undo and model traceability) but lists skip it."""
        before = self.get(example_id)
        self._set_deleted(example_id, True, "example.delete", who)
        self._push(LabelChange("delete", example_id, before.class_id, None))
        return self.get(example_id, include_deleted=True)

    def set_split(self, example_id: int, split: Split, *, who: str | None = None) -> Example:
        """Move an example between the train and holdout splits."""
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
        before = self.get(example_id)
        with self._ws.transaction() as conn:
            conn.execute("UPDATE examples SET split = ? WHERE id = ?", (split, example_id))
            self._ws.audit.record(
                conn, "example.split", "example", example_id, {"from": before.split, "to": split}, who=who
            )
        return self.get(example_id)

    # ---- undo / redo -------------------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self, *, who: str | None = None) -> LabelChange | None:
        """Revert the newest label change made through this workspace; ``None`` when there is nothing."""
        with self._history_lock:
            if not self._undo:
                return None
            change = self._undo.pop()
            self._apply(change, reverse=True, who=who)
            self._redo.append(change)
        return change

    def redo(self, *, who: str | None = None) -> LabelChange | None:
        """Re-apply the newest undone change; ``None`` when there is nothing to redo."""
        with self._history_lock:
            if not self._redo:
                return None
            change = self._redo.pop()
            self._apply(change, reverse=False, who=who)
            self._undo.append(change)
        return change

    def _push(self, change: LabelChange) -> None:
        with self._history_lock:
            self._undo.append(change)
            del self._undo[:-UNDO_DEPTH]
            self._redo.clear()

    def _apply(self, change: LabelChange, *, reverse: bool, who: str | None) -> None:
        tag = "undo" if reverse else "redo"
        if change.kind == "relabel":
            src, dst = (change.after, change.before) if reverse else (change.before, change.after)
            assert src is not None and dst is not None
            self._set_class(change.example_id, src, dst, f"example.relabel.{tag}", who)
        else:
            # Undoing an add or redoing a delete hides the example; the other two bring it back.
            hide = (change.kind == "add") == reverse
            self._set_deleted(
                change.example_id, hide, f"example.{'delete' if hide else 'restore'}.{tag}", who
            )

    # ---- row updates -------------------------------------------------------------------------------------
    def _set_class(self, example_id: int, src: int, dst: int, action: str, who: str | None) -> None:
        names = dict(self._ws.query("SELECT id, name FROM classes WHERE id IN (?, ?)", (src, dst)))
        with self._ws.transaction() as conn:
            conn.execute("UPDATE examples SET class_id = ? WHERE id = ?", (dst, example_id))
            self._ws.audit.record(
                conn, action, "example", example_id, {"from": names.get(src), "to": names.get(dst)}, who=who
            )

    def _set_deleted(self, example_id: int, deleted: bool, action: str, who: str | None) -> None:
        with self._ws.transaction() as conn:
            conn.execute(
                "UPDATE examples SET deleted_at = ? WHERE id = ?",
                (time.time() if deleted else None, example_id),
            )
            self._ws.audit.record(conn, action, "example", example_id, {}, who=who)

    # ---- queries -----------------------------------------------------------------------------------------
    def get(self, example_id: int, *, include_deleted: bool = False) -> Example:
        rows = self._ws.query(f"{_SELECT} WHERE e.id = ?", (example_id,))
        if not rows or (rows[0][10] is not None and not include_deleted):
            state = "was deleted" if rows else "does not exist"
            raise RecordNotFoundError(f"example {example_id} {state} in workspace {self._ws.root}")
        return _row(rows[0])

    def list(
        self, class_ref: int | str | None = None, *, split: Split | None = None, include_deleted: bool = False
    ) -> list[Example]:
        """Examples, oldest first, optionally of one class and/or split."""
        where, params = [], []
        if class_ref is not None:
            where.append("e.class_id = ?")
            params.append(self._ws.classes.resolve(class_ref).id)
        if split is not None:
            where.append("e.split = ?")
            params.append(split)
        if not include_deleted:
            where.append("e.deleted_at IS NULL")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return [_row(r) for r in self._ws.query(f"{_SELECT}{clause} ORDER BY e.id", params)]

    def counts(self) -> dict[str, int]:
        """Live examples per class name (classes without examples included, with 0)."""
        rows = self._ws.query(
            "SELECT c.name, count(e.id) FROM classes c LEFT JOIN examples e "
            "ON e.class_id = c.id AND e.deleted_at IS NULL GROUP BY c.id ORDER BY c.position, c.id"
        )
        return {name: int(n) for name, n in rows}

    def load_image(self, example: Example | int) -> np.ndarray:
        """The example's image, ``(H, W)`` grey or ``(H, W, 3)`` BGR uint8, verified against its hash."""
        ex = example if isinstance(example, Example) else self.get(example, include_deleted=True)
        return self._ws.images.load(ex.image_hash)


__all__ = ["ExampleStore"]
