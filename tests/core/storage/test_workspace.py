"""Opening, locking, refusing damaged or newer databases, and cleaning up after a crash."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.storage import (
    SchemaVersionError,
    StorageError,
    Workspace,
    WorkspaceCorruptError,
    WorkspaceLockedError,
    default_workspace_path,
)
from core.storage.schema import SCHEMA_VERSION
from tests.conftest import REPO_ROOT
from tests.core.storage.conftest import part_image


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _filled_workspace(root: Path, rng: np.random.Generator, n: int = 30) -> None:
    with Workspace.open(root) as ws:
        ws.classes.add("ok")
        for _ in range(n):
            ws.examples.add(part_image(rng), "ok", source="test")


def test_open_creates_layout_with_wal_and_current_schema(tmp_path: Path) -> None:
    with Workspace.open(tmp_path / "w") as ws:
        assert ws.db_path.is_file() and ws.images_dir.is_dir() and ws.models_dir.is_dir()
        assert ws.query("PRAGMA journal_mode")[0][0] == "wal"
        assert ws.query("PRAGMA foreign_keys")[0][0] == 1
        assert ws.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
        assert ws.integrity_check() == ["ok"]
    assert ws.closed
    with pytest.raises(StorageError, match="closed"):
        ws.classes.list()


def test_default_location_is_the_per_user_data_folder() -> None:
    path = default_workspace_path()
    assert str(path).startswith(os.environ["XDG_DATA_HOME"]) and "MetaInspect" in str(path)
    with Workspace.open() as ws:
        assert ws.root == path and ws.db_path.is_file()


def test_second_instance_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    with Workspace.open(tmp_path / "w"), pytest.raises(WorkspaceLockedError, match="another MetaInspect"):
        Workspace.open(tmp_path / "w")
    Workspace.open(tmp_path / "w").close()  # released on close


def test_lock_of_a_killed_process_does_not_lock_the_user_out(tmp_path: Path) -> None:
    root = tmp_path / "w"
    code = (
        "import sys, time; from core.storage import Workspace; "
        f"ws = Workspace.open({str(root)!r}); print('open', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        with pytest.raises(WorkspaceLockedError):
            Workspace.open(root)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]
    assert (root / ".metainspect.lock").exists()  # the stale file is still there, but not its OS lock
    with Workspace.open(root) as ws:
        assert ws.integrity_check() == ["ok"]


def test_corrupt_database_is_refused_and_left_untouched(tmp_path: Path, rng: np.random.Generator) -> None:
    root = tmp_path / "w"
    _filled_workspace(root, rng)
    db = root / "workspace.sqlite"
    raw = bytearray(db.read_bytes())
    page = 4096
    assert len(raw) >= 4 * page
    raw[2 * page : 3 * page] = rng.integers(0, 256, page, dtype=np.uint8).tobytes()  # smash the third page
    db.write_bytes(bytes(raw))
    before = _digest(db)
    with pytest.raises(WorkspaceCorruptError, match="left untouched"):
        Workspace.open(root)
    assert _digest(db) == before


def test_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "w"
    root.mkdir()
    (root / "workspace.sqlite").write_bytes(b"this is a text file, not a database\n" * 20)
    with pytest.raises(WorkspaceCorruptError, match="not an SQLite database"):
        Workspace.open(root)
    assert (root / "workspace.sqlite").read_bytes().startswith(b"this is a text file")


def test_sqlite_file_of_another_program_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "w"
    root.mkdir()
    with sqlite3.connect(root / "workspace.sqlite") as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.close()
    before = _digest(root / "workspace.sqlite")
    with pytest.raises(WorkspaceCorruptError, match="no MetaInspect schema"):
        Workspace.open(root)
    assert _digest(root / "workspace.sqlite") == before


def test_newer_schema_is_refused_and_never_downgraded(tmp_path: Path) -> None:
    root = tmp_path / "w"
    Workspace.open(root).close()
    conn = sqlite3.connect(root / "workspace.sqlite")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    before = _digest(root / "workspace.sqlite")
    with pytest.raises(SchemaVersionError, match="update MetaInspect") as info:
        Workspace.open(root)
    assert info.value.found == SCHEMA_VERSION + 1
    assert _digest(root / "workspace.sqlite") == before


def test_crash_leftovers_are_cleaned_on_open(tmp_path: Path, rng: np.random.Generator) -> None:
    root = tmp_path / "w"
    with Workspace.open(root) as ws:
        ws.classes.add("ok")
        kept = ws.examples.add(part_image(rng), "ok")
        orphan_hash = ws.images.put(part_image(rng))  # file written, row never committed
    kept_path = root / "images" / kept.image_hash[:2] / f"{kept.image_hash}.png"
    temp = root / "images" / "ab" / f".ab{'0' * 62}.png.0123456789ab.tmp"  # as files._temp_name writes
    temp.parent.mkdir(exist_ok=True)
    temp.write_bytes(b"half a file")
    stray_model = root / "models" / ("0" * 64 + ".pt")
    stray_model.write_bytes(b"model without a row")
    with Workspace.open(root) as ws:
        report = ws.recovery
        assert orphan_hash + ".png" in report.orphan_images_removed
        assert any(name.endswith(".tmp") for name in report.temp_files_removed)
        assert report.orphan_models_removed == (stray_model.name,)
        assert kept_path.is_file() and not temp.exists() and not stray_model.exists()
        assert ws.examples.get(kept.id).image_hash == kept.image_hash
    with Workspace.open(root) as ws:
        assert ws.recovery.clean


def test_a_file_in_place_of_the_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="is a file, not a workspace folder"):
        Workspace.open(tmp_path / "file")


def test_missing_database_beside_stored_images_is_refused_not_recreated(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    root = tmp_path / "w"
    _filled_workspace(root, rng, n=2)
    (root / "workspace.sqlite").rename(tmp_path / "moved-away.sqlite")
    with pytest.raises(WorkspaceCorruptError, match="missing but the folder holds 2 files"):
        Workspace.open(root)
    assert len(list((root / "images").glob("??/*.png"))) == 2  # nothing was cleaned up as "orphans"
    assert not (root / "workspace.sqlite").exists()


def test_migrations_form_a_contiguous_chain_to_the_current_version() -> None:
    from core.storage.schema import MIGRATIONS

    assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION + 1))


def test_recovery_removes_only_what_the_workspace_writes_where_it_writes_it(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """Opening a folder that holds other programs' files (``--workspace ~``) must not delete any of them."""
    home = tmp_path / "home"
    foreign = [
        home / ".bashrc.tmp",
        home / "project" / ".build.tmp",
        home / "images" / ".notes.tmp",
        home / "images" / "ab" / ".abc.png.123.tmp",
        home / "images" / "ab" / "holiday.png",
        home / "images" / "cd" / f"{'ab' * 32}.png",  # a hash name in the wrong fan-out folder
        home / "models" / "notes.txt",
        home / "models" / ".editor.tmp",
        home / "tmpabcdefgh" / "thesis.pdf",  # looks like a teaching folder, holds something else
    ]
    for p in foreign:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"not MetaInspect's")
    ours = [
        home / "images" / "ef" / f".ef{'1' * 62}.png.0123456789ab.tmp",
        home / "models" / f".{'2' * 64}.pt.0123456789ab.tmp",
        home / "models" / ".incoming-1733000000000000000.tmp",
        home / "models" / ".import-0123abcd.tmp",
        home / "models" / f"{'3' * 64}.pt",  # orphan model: no row names it
        home / "tmp_k2x9q0z" / "adapted.pt",  # a teaching folder left by SIGKILL
        home / "tmp_k2x9q0z" / ".adapted.pt.0123456789ab.tmp",
    ]
    with Workspace.open(home) as ws:  # a new workspace in a folder full of other files
        assert ws.recovery.clean
    for p in ours:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"leftover")
    with Workspace.open(home) as ws:
        removed = set(ws.recovery.temp_files_removed) | set(ws.recovery.orphan_models_removed)
    assert all(p.read_bytes() == b"not MetaInspect's" for p in foreign)
    assert not any(p.exists() for p in ours) and not (home / "tmp_k2x9q0z").exists()
    assert "tmp_k2x9q0z" in removed and f"{'3' * 64}.pt" in removed


def test_a_workspace_of_schema_1_gains_the_summary_table_and_keeps_its_rows(tmp_path: Path) -> None:
    from core.storage.schema import APPLICATION_ID, MIGRATIONS

    root = tmp_path / "w"
    root.mkdir()
    conn = sqlite3.connect(root / "workspace.sqlite")
    for statement in MIGRATIONS[1]:  # as the first release wrote it
        conn.execute(statement)
    conn.execute("INSERT INTO classes (name, created_at) VALUES ('ok', 0)")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Workspace.open(root) as ws:
        assert ws.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION >= 2
        assert [c.name for c in ws.classes.list()] == ["ok"]
        assert ws.query("SELECT count(*) FROM model_summaries") == [(0,)]
        assert ws.integrity_check() == ["ok"]
