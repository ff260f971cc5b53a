"""The workspace database schema (DDL) and its forward-only migrations.

The schema version lives in ``PRAGMA user_version``; ``PRAGMA application_id`` marks the file as a MetaInspect
workspace so that another program's SQLite file is refused instead of being written into.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.storage.errors import SchemaVersionError, WorkspaceCorruptError

APPLICATION_ID = 0x4D494E53  # "MINS"
SCHEMA_VERSION = 2

_V1 = (
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE classes (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE CHECK (length(trim(name)) > 0),
        colour TEXT NOT NULL DEFAULT '#808080',
        is_defect INTEGER NOT NULL DEFAULT 0 CHECK (is_defect IN (0, 1)),
        shortcut TEXT UNIQUE,
        position INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE examples (
        id INTEGER PRIMARY KEY,
        image_hash TEXT NOT NULL CHECK (length(image_hash) = 64),
        class_id INTEGER NOT NULL REFERENCES classes(id),
        source TEXT NOT NULL DEFAULT '',
        camera_settings TEXT NOT NULL DEFAULT '{}',
        roi TEXT,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL DEFAULT '',
        split TEXT NOT NULL DEFAULT 'train' CHECK (split IN ('train', 'holdout')),
        deleted_at REAL
    )""",
    "CREATE INDEX examples_by_class ON examples (class_id, deleted_at)",
    "CREATE INDEX examples_by_hash ON examples (image_hash)",
    """CREATE TABLE model_versions (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        algorithm TEXT NOT NULL,
        hyperparameters TEXT NOT NULL DEFAULT '{}',
        backbone TEXT NOT NULL DEFAULT '',
        class_names TEXT NOT NULL,
        metrics TEXT NOT NULL DEFAULT '{}',
        file_name TEXT NOT NULL,
        sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
        parent_id INTEGER REFERENCES model_versions(id),
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL DEFAULT '',
        is_active INTEGER NOT NULL DEFAULT 0 CHECK (is_active IN (0, 1))
    )""",
    # At most one active version, enforced by the database rather than by every caller.
    "CREATE UNIQUE INDEX model_versions_one_active ON model_versions (is_active) WHERE is_active = 1",
    # The exact example set a version was adapted on, with the label and image it had at that moment, so a
    # later relabel cannot rewrite history.
    """CREATE TABLE model_examples (
        model_id INTEGER NOT NULL REFERENCES model_versions(id),
        example_id INTEGER NOT NULL REFERENCES examples(id),
        class_name TEXT NOT NULL,
        image_hash TEXT NOT NULL,
        PRIMARY KEY (model_id, example_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE inspections (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        part_id INTEGER,
        frame_id INTEGER,
        model_id INTEGER REFERENCES model_versions(id),
        predicted TEXT NOT NULL,
        probabilities TEXT NOT NULL DEFAULT '[]',
        verdict TEXT NOT NULL,
        low_confidence INTEGER NOT NULL DEFAULT 0 CHECK (low_confidence IN (0, 1)),
        override TEXT,
        image_hash TEXT
    )""",
    # Covering index: the partial minutes at the edges of a counts window read only this index.
    "CREATE INDEX inspections_by_time ON inspections (time, predicted, verdict)",
    "CREATE INDEX inspections_by_image ON inspections (image_hash) WHERE image_hash IS NOT NULL",
    # Per-minute counts, kept in the same transaction as the rows: "counts per class, last hour" sums at most
    # 60 buckets per class instead of counting ~200 000 rows (60 verdicts/s), so it stays fast at any size.
    """CREATE TABLE inspection_counts (
        bucket INTEGER NOT NULL,
        predicted TEXT NOT NULL,
        verdict TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (bucket, predicted, verdict)
    ) WITHOUT ROWID""",
    "CREATE INDEX inspections_by_part ON inspections (part_id)",
    """CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        entity TEXT NOT NULL,
        entity_id INTEGER,
        details TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX audit_by_entity ON audit_log (entity, entity_id)",
)

_V2 = (
    # What the check after adapting found for a version (core.station.summary.AdaptSummary as JSON: per-class
    # scores and the flagged examples), so a restart or a later activation shows it again.
    """CREATE TABLE model_summaries (
        model_id INTEGER PRIMARY KEY REFERENCES model_versions(id),
        summary TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
)

# MIGRATIONS[v] takes a database at version v - 1 to version v. Append only; never edit a released step.
MIGRATIONS: dict[int, tuple[str, ...]] = {1: _V1, 2: _V2}


def read_versions(conn: sqlite3.Connection, path: Path) -> tuple[int, int]:
    """``(application_id, user_version)`` of an open database; a damaged file raises a clear error."""
    try:
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise WorkspaceCorruptError(path, str(exc)) from exc
    return app_id, version


def check_compatible(conn: sqlite3.Connection, path: Path) -> int:
    """Refuse a newer schema or a foreign SQLite file; return the current schema version (0 = empty)."""
    app_id, version = read_versions(conn, path)
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(path, version, SCHEMA_VERSION)
    if version > 0 and app_id != APPLICATION_ID:
        raise WorkspaceCorruptError(
            path, f"it is an SQLite file of another program (application id {app_id:#x})"
        )
    if version == 0:
        tables = conn.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").fetchone()[0]
        if tables:
            raise WorkspaceCorruptError(path, f"it holds {tables} tables but no MetaInspect schema version")
    return version


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the database up to :data:`SCHEMA_VERSION`, one transaction per step; return the new version.

    ``conn`` must be in autocommit mode (``isolation_level=None``) so the explicit transactions here are
    the only ones.
    """
    version = check_compatible(conn, path)
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {target}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return SCHEMA_VERSION
