"""Disk full and read-only folders: a clear StorageError naming the path, nothing half-written, data intact.

Both run in a subprocess: "disk full" is a real kernel limit on file size (RLIMIT_FSIZE, so writes fail with
EFBIG exactly as on a full disk), and "read-only" needs an unprivileged user (root ignores permissions), so
under root the subject drops to ``nobody`` after its imports (the interpreter may live in root's home).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.storage import Workspace
from tests.conftest import REPO_ROOT
from tests.core.storage.conftest import part_image

pytestmark = pytest.mark.skipif(os.name == "nt", reason="resource limits and POSIX permissions")
NOBODY = 65534


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder an unprivileged subprocess can reach (pytest's tmp folders are private to the user)."""
    path = Path(tempfile.mkdtemp(prefix="metainspect-ro-"))
    path.chmod(0o755)
    yield path
    for p in (path, *path.rglob("*")):
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(path)


_DROP = f"""
import os
def drop_privileges():
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid({NOBODY})
        os.setuid({NOBODY})
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; it may call ``drop_privileges()`` once its imports are done."""
    env = {**os.environ, "HOME": tempfile.gettempdir(), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-c", _DROP + textwrap.dedent(code)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


def _seed_workspace(root: Path, rng: np.random.Generator) -> list[int]:
    with Workspace.open(root) as ws:
        ws.classes.add("ok")
        return [ws.examples.add(part_image(rng), "ok").id for _ in range(3)]


def _assert_intact(root: Path, ids: list[int], inspections: int = 0) -> None:
    with Workspace.open(root) as ws:
        assert ws.integrity_check() == ["ok"]
        assert [e.id for e in ws.examples.list()] == ids
        for e in ws.examples.list():
            ws.examples.load_image(e)
        assert ws.inspections.count() == inspections
        assert ws.recovery.temp_files_removed == ()  # failed writes removed their own temp files
        assert ws.recovery.orphan_images_removed == ()


def test_disk_full_gives_a_clear_error_and_keeps_the_workspace(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    root = tmp_path / "ws"
    ids = _seed_workspace(root, rng)
    limit = max(p.stat().st_size for p in root.rglob("*") if p.is_file()) + 48 * 1024
    result = _run(
        f"""
        import resource, signal
        import numpy as np
        from core.storage import NewInspection, StorageWriteError, Workspace
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG like ENOSPC instead of being killed
        ws = Workspace.open({str(root)!r})
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        big = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
        try:
            ws.examples.add(big, "ok")
        except StorageWriteError as exc:
            print("IMAGE", exc)
        rows = [NewInspection("ok", "OK", tuple(np.linspace(0, 1, 50)), part_id=i) for i in range(3000)]
        try:
            ws.inspections.append_many(rows)
        except StorageWriteError as exc:
            print("DB", exc)
        try:
            ws.close()
        except StorageWriteError as exc:
            print("CLOSE", exc)
        """
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert str(root / "images") in lines["IMAGE"] and "File too large" in lines["IMAGE"]
    assert "free disk space" in lines["IMAGE"]
    # A real full disk reports SQLITE_FULL; the file-size limit surfaces as an I/O error. Both are named.
    assert re.search(r"workspace\.sqlite: (database or disk is full|disk I/O error)", lines["DB"]), lines[
        "DB"
    ]
    _assert_intact(root, ids)


def test_read_only_workspace_folder_is_refused_clearly(shared_dir: Path, rng: np.random.Generator) -> None:
    root = shared_dir / "ws"
    ids = _seed_workspace(root, rng)
    before = hashlib.sha256((root / "workspace.sqlite").read_bytes()).hexdigest()
    for p in sorted(root.rglob("*"), reverse=True):
        p.chmod(0o555 if p.is_dir() else 0o444)
    root.chmod(0o555)
    result = _run(
        f"""
        from core.storage import StorageError, Workspace
        drop_privileges()
        try:
            Workspace.open({str(root)!r})
        except StorageError as exc:
            print(type(exc).__name__, exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("StorageWriteError"), result.stdout
    assert (
        str(root) in result.stdout
        and "Permission denied" in result.stdout
        and "writable copy" in result.stdout
    )
    assert hashlib.sha256((root / "workspace.sqlite").read_bytes()).hexdigest() == before
    for p in (root, *root.rglob("*")):
        p.chmod(0o755 if p.is_dir() else 0o644)
    _assert_intact(root, ids)


def test_images_folder_turning_read_only_fails_the_label_not_the_workspace(
    shared_dir: Path, rng: np.random.Generator
) -> None:
    root = shared_dir / "ws"
    ids = _seed_workspace(root, rng)
    if os.geteuid() == 0:
        for p in (root, *root.rglob("*")):
            os.chown(p, NOBODY, NOBODY)
    result = _run(
        f"""
        import numpy as np
        from pathlib import Path
        from core.storage import StorageWriteError, Workspace
        drop_privileges()
        ws = Workspace.open({str(root)!r})
        images = Path({str(root / "images")!r})
        for d in (images, *images.iterdir()):
            d.chmod(0o555)
        try:
            ws.examples.add(np.full((20, 20), 7, np.uint8), "ok")
        except StorageWriteError as exc:
            print("ADD", exc)
        for d in (images, *images.iterdir()):
            d.chmod(0o755)
        ok = ws.examples.add(np.full((20, 20), 9, np.uint8), "ok")  # works again once writable
        print("LATER", ok.id)
        ws.close()
        """
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert str(root / "images") in lines["ADD"] and "Permission denied" in lines["ADD"]
    _assert_intact(root, [*ids, int(lines["LATER"])])


def test_buffered_verdicts_survive_a_full_disk_until_space_is_freed(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    root = tmp_path / "ws"
    ids = _seed_workspace(root, rng)
    limit = max(p.stat().st_size for p in root.rglob("*") if p.is_file()) + 48 * 1024
    result = _run(
        f"""
        import resource, signal, time
        import numpy as np
        from core.storage import NewInspection, StorageWriteError, Workspace
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        ws = Workspace.open({str(root)!r})
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, hard))  # the disk fills up
        writer = ws.inspections.buffered_writer(max_rows=500, max_delay_s=0.05, max_pending=5000)
        probs = tuple(np.linspace(0, 1, 50))
        writer.add_many(NewInspection("ok", "OK", probs, part_id=i) for i in range(3000))
        time.sleep(0.5)  # the background flushes fail meanwhile
        for i in range(3000, 3600):  # the line goes on: adding never raises while the disk is full
            writer.add(NewInspection("ok", "OK", probs, part_id=i))
        print("REPORTED", writer.error)
        print("PENDING", writer.pending)
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space freed
        deadline = time.monotonic() + 10
        while writer.pending and time.monotonic() < deadline:  # written by the background retries
            time.sleep(0.05)
        print("AFTER", writer.pending, writer.error, writer.dropped)
        writer.close()
        ws.close()
        """
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert "workspace.sqlite" in lines["REPORTED"] and isinstance(lines["REPORTED"], str)
    assert 600 < int(lines["PENDING"]) <= 3600
    assert lines["AFTER"] == "0 None 0"
    _assert_intact(root, ids, inspections=3600)


def test_a_long_full_disk_drops_the_oldest_verdicts_beyond_the_bound_and_counts_them(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    root = tmp_path / "ws"
    ids = _seed_workspace(root, rng)
    limit = max(p.stat().st_size for p in root.rglob("*") if p.is_file()) + 48 * 1024
    result = _run(
        f"""
        import resource, signal
        import numpy as np
        from core.storage import NewInspection, Workspace
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        ws = Workspace.open({str(root)!r})
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, hard))
        writer = ws.inspections.buffered_writer(max_rows=100, max_delay_s=60, max_pending=1000)
        probs = tuple(np.linspace(0, 1, 50))
        for i in range(1500):
            writer.add(NewInspection("ok", "OK", probs, part_id=i))
        print("STATE", writer.pending, writer.written + writer.dropped, writer.error is not None)
        print("PROBLEM", writer.problem())
        written_before = writer.written
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        writer.close()
        parts = {{r.part_id for r in ws.inspections.recent(2000)}}
        print("PARTS", parts == set(range(written_before)) | set(range(500, 1500)), written_before)
        print("HEALTHY", writer.problem())
        ws.close()
        """
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["STATE"] == "1000 500 True"  # 1000 kept; the rest written before the disk filled, or dropped
    assert "cannot be written" in lines["PROBLEM"] and "1000 are kept in memory" in lines["PROBLEM"]
    assert "verdicts were lost" in lines["PROBLEM"] and "inspection goes on" in lines["PROBLEM"]
    # Space is back: nothing waits any more, but the loss stays counted and shown.
    assert "verdicts were lost" in lines["HEALTHY"] and "cannot be written" not in lines["HEALTHY"]
    ok, written_before = lines["PARTS"].split()
    assert ok == "True"  # the oldest unwritten verdicts went first; the newest 1000 were kept and written
    _assert_intact(root, ids, inspections=1000 + int(written_before))
