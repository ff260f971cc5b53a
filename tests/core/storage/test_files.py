"""Atomic file writes in chunks, their writeback started as they go: what lands on disk is exactly the data."""

from __future__ import annotations

import os
from pathlib import Path

from core.storage.files import atomic_copy_file, atomic_write_bytes, sha256_bytes, start_writeback


def test_large_writes_and_copies_in_chunks_land_whole(tmp_path: Path) -> None:
    data = os.urandom((9 << 20) + 12345)  # more than two write chunks, not a multiple of one
    target = tmp_path / "models" / "adapted.pt"
    atomic_write_bytes(target, data)
    assert target.read_bytes() == data
    copy = tmp_path / "store" / "copy.pt"
    assert atomic_copy_file(target, copy) == sha256_bytes(data)
    assert copy.read_bytes() == data
    assert [p.name for p in target.parent.iterdir()] == ["adapted.pt"], "no temp file left behind"


def test_starting_writeback_never_changes_a_file_and_ignores_bad_ranges(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 10000)
    with path.open("r+b") as fh:
        start_writeback(fh.fileno(), 0, 10000)
        start_writeback(fh.fileno(), 50000, 10)  # past the end: nothing to do
        start_writeback(fh.fileno(), 0, 0)
    assert path.read_bytes() == b"x" * 10000
