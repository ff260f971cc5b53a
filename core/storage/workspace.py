"""A workspace folder: open, lock, thread-local connections, transactions, paths and crash recovery.

Layout::

    <root>/workspace.sqlite   SQLite in WAL mode (schema in core.storage.schema)
    <root>/images/ab/<sha256>.png
    <root>/models/<sha256>.pt
    <root>/.metainspect.lock  held (OS lock, released if the process dies) while the workspace is open
"""

from __future__ import annotations

import getpass
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import filelock

from core.paths import default_workspace_path
from core.storage.audit import AuditLog
from core.storage.classes import ClassStore
from core.storage.errors import (
    FileIntegrityError,
    StorageError,
    StorageWriteError,
    WorkspaceCorruptError,
    WorkspaceLockedError,
)
from core.storage.examples import ExampleStore
from core.storage.files import ImageStore, ensure_dir
from core.storage.inspections import InspectionLog
from core.storage.meta import MetaStore
from core.storage.models import ModelStore
from core.storage.records import RecoveryReport
from core.storage.recovery import count_stored_files, find_and_remove_leftovers
from core.storage.schema import migrate

DB_NAME = "workspace.sqlite"
LOCK_NAME = ".metainspect.lock"
SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 30.0


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry / no login name in some containers and services
        return "unknown"


def translate_sqlite_error(exc: sqlite3.Error, path: Path) -> StorageError:
    """Turn an sqlite3 error into the matching :class:`StorageError` naming ``path``."""
    text = str(exc).lower()
    if (
        "full" in text
        or "readonly" in text
        or "read-only" in text
        or "i/o" in text
        or "unable to open" in text
    ):
        return StorageWriteError(path, str(exc))
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return WorkspaceCorruptError(path, str(exc))
    if "locked" in text or "busy" in text:
        return StorageError(f"workspace database {path} stayed busy for over {BUSY_TIMEOUT_S:.0f} s: {exc}")
    return StorageError(f"workspace database {path}: {exc}")


class Workspace:
    """An open workspace. Use :meth:`open`; close it (or use ``with``) to release the lock.

    Every thread gets its own SQLite connection; writers serialise on ``BEGIN IMMEDIATE`` with a
    busy timeout, so the GUI, capture and adaptation threads can all write without "database is locked".

    Attributes
    ----------
    classes, examples, models, inspections, audit, meta
        The table APIs (:class:`ClassStore`, :class:`ExampleStore`, :class:`ModelStore`,
        :class:`InspectionLog`, :class:`AuditLog`, :class:`~core.storage.meta.MetaStore`).
    images
        Content-addressed PNG files (:class:`ImageStore`).
    recovery
        What was cleaned up on open after an earlier crash.
    """

    def __init__(self, root: Path, lock: filelock.BaseFileLock, user: str) -> None:
        # Private: Workspace.open validates the folder and the database before constructing this.
        self.root = root
        self.user = user
        self._lock = lock
        self._local = threading.local()
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._conns_guard = threading.Lock()
        self._closed = False
        self.images = ImageStore(root / "images")
        self.audit = AuditLog(self)
        self.classes = ClassStore(self)
        self.examples = ExampleStore(self)
        self.models = ModelStore(self)
        self.inspections = InspectionLog(self)
        self.meta = MetaStore(self)
        self.recovery = RecoveryReport()

    # ---- paths -------------------------------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    # ---- opening -----------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: Path | str | None = None,
        *,
        user: str | None = None,
        lock_timeout: float = 0.0,
        quick_check: bool = True,
        cleanup: bool = True,
    ) -> Workspace:
        """Open (creating if needed) the workspace in ``path`` (default: :func:`default_workspace_path`).

        Parameters
        ----------
        user
            Recorded as "who" on examples and audit entries; defaults to the login name.
        lock_timeout
            Seconds to wait for another instance to close the workspace.
        quick_check
            Run ``PRAGMA quick_check`` before using the database (linear in its size: about a second per
            million inspection rows on a slow disk).
        cleanup
            Remove files left by a crash (temp files, images and models no row names).

        Raises
        ------
        WorkspaceLockedError, WorkspaceCorruptError, SchemaVersionError, StorageWriteError
        """
        root = Path(path) if path is not None else default_workspace_path()
        if root.exists() and not root.is_dir():
            raise StorageError(f"{root} is a file, not a workspace folder; choose a folder")
        try:
            ensure_dir(root)
        except OSError as exc:
            raise StorageWriteError(root, exc) from exc
        lock = filelock.FileLock(root / LOCK_NAME, timeout=lock_timeout)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise WorkspaceLockedError(root / LOCK_NAME) from None
        except OSError as exc:
            raise StorageWriteError(
                root / LOCK_NAME,
                exc,
                "A workspace folder must be writable; open a writable copy of it instead",
            ) from exc
        ws = cls(root, lock, user or _default_user())
        try:
            ws._open_database(quick_check)
            for sub in (ws.images_dir, ws.models_dir):
                try:
                    ensure_dir(sub)
                except OSError as exc:
                    raise StorageWriteError(sub, exc) from exc
            if cleanup:
                ws.recovery = ws.cleanup()
        except BaseException:
            ws.close()
            raise
        return ws

    def _open_database(self, quick_check: bool) -> None:
        path = self.db_path
        head = b""
        if path.exists():
            with open(path, "rb") as fh:
                head = fh.read(len(SQLITE_MAGIC))
            if head and head != SQLITE_MAGIC:
                raise WorkspaceCorruptError(path, "it is not an SQLite database (wrong file header)")
        if not head:
            # A missing or empty database beside stored files is damage, not a new workspace: creating a fresh
            # database would make every stored file look orphaned (and recovery would remove them).
            held = count_stored_files(self)
            if held:
                state = "empty" if path.exists() else "missing"
                raise WorkspaceCorruptError(
                    path, f"the database file is {state} but the folder holds {held} files"
                )
        conn = self.connection()
        try:
            # Checks first, all read-only: a damaged or newer file must never be written, not even its header.
            if quick_check and head:
                result = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
                if result != ["ok"]:
                    raise WorkspaceCorruptError(path, "integrity check failed: " + "; ".join(result))
            from core.storage.schema import check_compatible

            check_compatible(conn, path)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(
                    f"workspace database {path} cannot use WAL mode (got {mode!r}); use a local disk"
                )
            migrate(conn, path)
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, path) from exc

    # ---- connections and transactions --------------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """This thread's connection (created on first use)."""
        if self._closed:
            raise StorageError(f"workspace {self.root} is closed; open it again")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
                )
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                conn.execute("PRAGMA foreign_keys = ON")
                # FULL: a confirmed label must survive a power cut, not only an application crash.
                conn.execute("PRAGMA synchronous = FULL")
            except sqlite3.Error as exc:
                raise translate_sqlite_error(exc, self.db_path) from exc
            self._local.conn = conn
            self._local.depth = 0
            with self._conns_guard:
                # Close the connections of threads that have ended so short-lived workers do not leak them.
                alive = []
                for thread, other in self._conns:
                    if thread.is_alive():
                        alive.append((thread, other))
                    else:
                        other.close()
                self._conns = [*alive, (threading.current_thread(), conn)]
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``); nested uses join the outer one.

        Commits when the block ends, rolls back on any exception. sqlite3 errors come out as
        :class:`StorageError` subclasses.
        """
        conn = self.connection()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, self.db_path) from exc
        self._local.depth = 1
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise translate_sqlite_error(exc, self.db_path) from exc
            raise
        finally:
            self._local.depth = 0

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query on this thread's connection; sqlite3 errors become StorageError."""
        try:
            return self.connection().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, self.db_path) from exc

    def integrity_check(self) -> list[str]:
        """``PRAGMA integrity_check`` rows: ``["ok"]`` for a healthy database."""
        return [str(r[0]) for r in self.query("PRAGMA integrity_check")]

    def verify_files(self) -> list[str]:
        """Check every image and model file a row names: present and matching its SHA-256.

        Returns one message per problem (empty when all is well); reads every file, so run it on demand
        (e.g. a "check workspace" button), not on every open.
        """
        problems = []
        hashes = self.query(
            "SELECT image_hash FROM examples UNION SELECT image_hash FROM model_examples "
            "UNION SELECT image_hash FROM inspections WHERE image_hash IS NOT NULL"
        )
        for (image_hash,) in hashes:
            try:
                self.images.read_bytes(image_hash)
            except FileIntegrityError as exc:
                problems.append(str(exc))
        for version in self.models.list():
            try:
                self.models.verified_path(version)
            except FileIntegrityError as exc:
                problems.append(str(exc))
        return problems

    # ---- recovery ----------------------------------------------------------------------------------------
    def cleanup(self) -> RecoveryReport:
        """Remove crash leftovers: temp files and image/model files that no committed row names, only under
        the names and in the folders the workspace itself writes (listed in :mod:`core.storage.recovery`).

        Safe only while holding the lock and before this instance writes (which :meth:`open` guarantees).
        """
        return find_and_remove_leftovers(self)

    # ---- closing -----------------------------------------------------------------------------------------
    def close(self) -> None:
        """Flush buffered inspection writers, close every connection and release the lock. Idempotent."""
        if self._closed:
            return
        try:
            self.inspections.close_writers()
        finally:
            self._closed = True
            with self._conns_guard:
                conns, self._conns = self._conns, []
            for _thread, conn in conns:
                conn.close()
            self._lock.release()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}{', closed' if self._closed else ''})"
