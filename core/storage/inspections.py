"""The inspection log: one row per verdict, appended in batches, queried by time window."""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from core.storage.errors import RecordNotFoundError, StorageError
from core.storage.records import Inspection, NewInspection

if TYPE_CHECKING:
    from core.storage.workspace import Workspace

_COLUMNS = "id, time, part_id, frame_id, model_id, predicted, probabilities, verdict, low_confidence, override, image_hash"
_INSERT = (
    "INSERT INTO inspections (time, part_id, frame_id, model_id, predicted, probabilities, verdict, "
    "low_confidence, override, image_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


BUCKET_S = 60  # width of one inspection_counts bucket in seconds


def insert_inspections(conn: sqlite3.Connection, params: Sequence[tuple[Any, ...]]) -> int:
    """Insert rows (in ``_INSERT`` column order) and their per-minute counts; returns the last rowid.

    Must run inside the caller's write transaction so rows and counts commit together.
    """
    conn.executemany(_INSERT, params)
    last = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
    buckets = Counter((int(p[0] // BUCKET_S), p[4], p[6]) for p in params)
    conn.executemany(
        "INSERT INTO inspection_counts (bucket, predicted, verdict, n) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (bucket, predicted, verdict) DO UPDATE SET n = n + excluded.n",
        [(*key, n) for key, n in buckets.items()],
    )
    return last


def _row(r: tuple[Any, ...]) -> Inspection:
    return Inspection(
        r[0], r[1], r[2], r[3], r[4], r[5], tuple(json.loads(r[6])), r[7], bool(r[8]), r[9], r[10]
    )


def row_params(rec: NewInspection, now: float) -> tuple[Any, ...]:
    if not rec.predicted or not rec.verdict:
        raise ValueError(f"an inspection needs a predicted class and a verdict, got {rec}")
    probs = json.dumps([round(float(p), 6) for p in rec.probabilities])
    return (
        now if rec.time is None else float(rec.time),
        rec.part_id,
        rec.frame_id,
        rec.model_id,
        rec.predicted,
        probs,
        rec.verdict,
        int(rec.low_confidence),
        rec.override,
        rec.image_hash,
    )


class InspectionLog:
    """The ``inspections`` table."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._writers: list[BufferedInspectionWriter] = []
        self._writers_lock = threading.Lock()
        self._known_models: set[int] = set()

    def append(self, record: NewInspection, image: np.ndarray | bytes | None = None) -> int:
        """Log one verdict (optionally with the part image); returns its id. Prefer batches for a live line."""
        return self.append_many([record], [image])[0]

    def append_many(
        self, records: Sequence[NewInspection], images: Sequence[np.ndarray | bytes | None] | None = None
    ) -> list[int]:
        """Log many verdicts in one transaction (all or none); returns their ids in order.

        ``images[i]``, when given, is stored (fsynced) before the rows commit and its hash recorded.
        """
        if images is not None and len(images) != len(records):
            raise ValueError(f"got {len(images)} images for {len(records)} inspections; pass one per record")
        now = time.time()
        params = []
        for i, rec in enumerate(records):
            self.check_model(rec.model_id)
            p = row_params(rec, now)
            image = None if images is None else images[i]
            if image is not None:
                p = (*p[:-1], self._ws.images.put(image))
            params.append(p)
        return self.append_rows(params)

    def append_rows(self, params: Sequence[tuple[Any, ...]]) -> list[int]:
        """Insert rows already converted by ``row_params`` in one transaction; returns their ids."""
        if not params:
            return []
        with self._ws.transaction() as conn:
            last = insert_inspections(conn, params)
        # Rowids are allocated consecutively inside one write transaction, so the ids follow from the last.
        return list(range(last - len(params) + 1, last + 1))

    def set_override(self, inspection_id: int, override: str | None, *, who: str | None = None) -> Inspection:
        """Record (or clear) an operator's correction of a verdict; audited."""
        before = self.get(inspection_id)
        with self._ws.transaction() as conn:
            conn.execute("UPDATE inspections SET override = ? WHERE id = ?", (override, inspection_id))
            self._ws.audit.record(
                conn, "inspection.override", "inspection", inspection_id,
                {"from": before.override, "to": override, "predicted": before.predicted}, who=who,
            )  # fmt: skip
        return self.get(inspection_id)

    def get(self, inspection_id: int) -> Inspection:
        rows = self._ws.query(f"SELECT {_COLUMNS} FROM inspections WHERE id = ?", (inspection_id,))
        if not rows:
            raise RecordNotFoundError(f"no inspection {inspection_id} in workspace {self._ws.root}")
        return _row(rows[0])

    def recent(self, limit: int = 100, *, since: float | None = None) -> list[Inspection]:
        """Newest first; at most ``limit`` rows, optionally only those at or after ``since``."""
        if since is None:
            rows = self._ws.query(
                f"SELECT {_COLUMNS} FROM inspections ORDER BY id DESC LIMIT ?", (int(limit),)
            )
        else:
            rows = self._ws.query(
                f"SELECT {_COLUMNS} FROM inspections WHERE time >= ? ORDER BY time DESC LIMIT ?",
                (float(since), int(limit)),
            )
        return [_row(r) for r in rows]

    def for_part(self, part_id: int) -> list[Inspection]:
        """Every logged verdict of one part, oldest first ("why was part 123 rejected?")."""
        rows = self._ws.query(f"SELECT {_COLUMNS} FROM inspections WHERE part_id = ? ORDER BY id", (part_id,))
        return [_row(r) for r in rows]

    def counts_by_class(self, since: float, until: float | None = None) -> dict[str, int]:
        """Predicted class -> count for ``since <= time < until`` (``until`` = no upper bound)."""
        return self._counts("predicted", since, until)

    def counts_by_verdict(self, since: float, until: float | None = None) -> dict[str, int]:
        """Verdict -> count for ``since <= time < until``."""
        return self._counts("verdict", since, until)

    def _counts(self, column: str, since: float, until: float | None) -> dict[str, int]:
        # Whole minutes come from inspection_counts, the partial minutes at both edges from the rows (via the
        # covering time index); one statement, so one consistent snapshot.
        lo = float(since)
        hi = math.inf if until is None else float(until)
        first = math.ceil(lo / BUCKET_S)
        last = math.floor(hi / BUCKET_S) if math.isfinite(hi) else 2**40  # no upper bound: far future
        if last <= first:
            sql = (
                f"SELECT {column}, count(*) FROM inspections WHERE time >= ?1 AND time < ?2 GROUP BY {column}"
            )
            rows = self._ws.query(sql, (lo, hi))
        else:
            sql = (
                f"SELECT k, sum(n) FROM ("
                f" SELECT {column} AS k, n FROM inspection_counts WHERE bucket >= ?3 AND bucket < ?4"
                f" UNION ALL SELECT {column}, 1 FROM inspections WHERE time >= ?1 AND time < ?5"
                f" UNION ALL SELECT {column}, 1 FROM inspections WHERE time >= ?6 AND time < ?2"
                f") GROUP BY k"
            )
            rows = self._ws.query(sql, (lo, hi, first, last, first * BUCKET_S, last * BUCKET_S))
        return {str(k): int(n) for k, n in rows if n}

    def count(self) -> int:
        return int(self._ws.query("SELECT count(*) FROM inspections")[0][0])

    # ---- buffered writing --------------------------------------------------------------------------------
    def buffered_writer(
        self, max_rows: int = 64, max_delay_s: float = 1.0, max_pending: int = 200_000
    ) -> BufferedInspectionWriter:
        """A writer that batches verdicts: flushes every ``max_rows`` rows or ``max_delay_s`` seconds,
        and on close (closing the workspace closes it too); holds at most ``max_pending`` unwritten rows
        while the disk is full."""
        writer = BufferedInspectionWriter(self, max_rows, max_delay_s, max_pending)
        with self._writers_lock:
            self._writers.append(writer)
        return writer

    def forget_writer(self, writer: BufferedInspectionWriter) -> None:
        """Drop a writer that its owner closed (after a successful final flush)."""
        with self._writers_lock:
            if writer in self._writers:
                self._writers.remove(writer)

    def check_model(self, model_id: int | None) -> None:
        """Refuse an unknown model version id now, not at a later (background) flush where it would block the
        whole batch. Versions are never deleted, so known ids are cached."""
        if model_id is None or model_id in self._known_models:
            return
        if not self._ws.query("SELECT 1 FROM model_versions WHERE id = ?", (model_id,)):
            raise RecordNotFoundError(
                f"inspection names model version {model_id}, which workspace {self._ws.root} does not hold"
            )
        self._known_models.add(model_id)

    def close_writers(self) -> None:
        """Flush and stop every buffered writer (called by ``Workspace.close``)."""
        with self._writers_lock:
            writers, self._writers = self._writers, []
        errors = []
        for w in writers:
            try:
                w.close()
            except StorageError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


class BufferedInspectionWriter:
    """Thread-safe batching front of :class:`InspectionLog` for the live line.

    Rows wait in memory for at most ``max_delay_s`` (a background thread flushes them), so a crash can lose
    at most that much of the log; labels never go through here.

    When a flush fails (disk full, the database busy or read-only) the rows stay queued, :meth:`add` goes on
    accepting new ones (the line must not stop) and the background thread retries every ``max_delay_s``, so
    everything is written once space returns. The queue is bounded by ``max_pending`` rows (about 300 bytes
    each): beyond it the oldest rows are dropped and counted in :attr:`dropped`. :attr:`error` holds the
    failure while it lasts, for the owner to show.
    """

    def __init__(
        self, log: InspectionLog, max_rows: int, max_delay_s: float, max_pending: int = 200_000
    ) -> None:
        if max_rows < 1 or max_delay_s <= 0 or max_pending < max_rows:
            raise ValueError(
                f"max_rows must be >= 1, max_delay_s > 0 and max_pending >= max_rows, got {max_rows}, "
                f"{max_delay_s}, {max_pending}"
            )
        self._log = log
        self._max_rows = max_rows
        self._max_delay = max_delay_s
        self._max_pending = max_pending
        self._pending: list[tuple[Any, ...]] = []  # rows already converted: validated and time-stamped
        self._in_flight = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._error: StorageError | None = None
        self._stop = threading.Event()
        self.written = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="inspection-log-flusher", daemon=True)
        self._thread.start()

    def add(self, record: NewInspection) -> None:
        """Queue one verdict (stamped with the current time when its ``time`` is None)."""
        self.add_many([record])

    def add_many(self, records: Iterable[NewInspection]) -> None:
        """Queue verdicts. Never raises for a failing disk (see the class docstring); raises for a closed
        writer, a malformed record or an unknown model version."""
        if self._stop.is_set():
            raise StorageError("this inspection writer is closed; get a new one from ws.inspections")
        now = time.time()
        rows = []
        for r in records:
            self._log.check_model(r.model_id)
            rows.append(row_params(r, now))
        with self._lock:
            self._pending.extend(rows)
            excess = len(self._pending) + self._in_flight - self._max_pending
            if excess > 0:  # oldest first: the newest verdicts matter most to the line
                excess = min(excess, len(self._pending))
                del self._pending[:excess]
                self.dropped += excess
            full = len(self._pending) >= self._max_rows and self._error is None
        if full:
            try:
                self.flush()
            except StorageError as exc:
                self._error = exc  # kept queued; the background thread retries

    @property
    def error(self) -> StorageError | None:
        """The last flush failure while it lasts (``None`` once a flush succeeds)."""
        return self._error

    def problem(self) -> str | None:
        """One line for the inspector while verdicts are not being written (``None`` when all is well)."""
        error, dropped, pending = self._error, self.dropped, self.pending
        if error is None and not dropped:
            return None
        parts = []
        if error is not None:
            parts.append(
                f"verdicts cannot be written to the workspace now ({error}); {pending} are kept in memory and "
                "will be written when the disk has room again"
            )
        if dropped:
            parts.append(
                f"{dropped} verdicts were lost because the disk stayed full (memory holds {self._max_pending})"
            )
        return "; ".join(parts) + "; inspection goes on"

    def flush(self) -> int:
        """Write everything queued now; returns the number of rows written.

        Raises
        ------
        StorageError
            When the write fails; the rows stay queued.
        """
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
                self._in_flight = len(batch)
            if not batch:
                return 0
            try:
                self._log.append_rows(batch)
            except StorageError as exc:
                with self._lock:
                    self._pending = batch + self._pending
                    self._in_flight = 0
                self._error = exc
                raise
            with self._lock:
                self._in_flight = 0
            self._error = None
            self.written += len(batch)
            return len(batch)

    @property
    def pending(self) -> int:
        """Rows not yet committed (queued, or in a flush that is still running)."""
        with self._lock:
            return len(self._pending) + self._in_flight

    def close(self) -> None:
        """Stop the background thread and flush what is left (raises if that last write fails)."""
        self._stop.set()
        self._thread.join()
        self.flush()
        self._log.forget_writer(self)

    def _run(self) -> None:
        while not self._stop.wait(self._max_delay):
            # flush() keeps the rows and records the error for the owner to show; the next round retries.
            with contextlib.suppress(StorageError):
                self.flush()

    def __enter__(self) -> BufferedInspectionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
