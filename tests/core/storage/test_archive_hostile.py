"""Hostile and malformed archives: refused in one line, nothing written outside (or inside) the workspace."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.storage import StorageError, Workspace, export_archive, import_archive
from core.storage.archive_checks import ArchiveError, ArchiveLimits
from tests.core.storage.conftest import part_image


@pytest.fixture
def good_archive(ws: Workspace, rng: np.random.Generator, tmp_path: Path) -> Path:
    ws.examples.add(part_image(rng), "ok")
    ws.examples.add(part_image(rng), "scratch")
    model = tmp_path / "m.pt"
    model.write_bytes(b"weights")
    ws.models.register(model, algorithm="protonet", class_names=["ok", "scratch"], example_ids=[1, 2])
    return export_archive(ws, tmp_path / "good.zip")


def _rewrite(src: Path, dst: Path, change: Callable[[str, bytes], tuple[str, bytes] | None]) -> Path:
    """Copy ``src`` member by member through ``change`` (return None to drop a member)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            out = change(info.filename, zin.read(info))
            if out is not None:
                zout.writestr(out[0], out[1])
    return dst


def _without_log(name: str, data: bytes) -> tuple[str, bytes] | None:
    return None if name == "inspections.jsonl" else (name, data)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _assert_refused(tmp_path: Path, archive: Path, match: str, limits: ArchiveLimits | None = None) -> None:
    before = _files(tmp_path)
    with Workspace.open(tmp_path / "target") as target:
        opened = _files(tmp_path)
        with pytest.raises(StorageError, match=match) as info:
            import_archive(target, archive, limits=limits)
        assert len(str(info.value).splitlines()) == 1
        assert target.classes.list() == [] and target.models.list() == []
        # Nothing new anywhere under tmp_path (the workspace's own files came from opening it).
        assert _files(tmp_path) == opened
    assert before <= _files(tmp_path)


@pytest.mark.parametrize(
    "evil",
    ["../../escaped.pth", "/tmp/escaped.pth", "models/../../escaped.pth", "C:/escaped.pth"],
)
def test_member_names_outside_the_archive_are_refused(good_archive: Path, tmp_path: Path, evil: str) -> None:
    def add_evil(name: str, data: bytes) -> tuple[str, bytes]:
        return name, data

    bad = _rewrite(good_archive, tmp_path / "evil.zip", add_evil)
    with zipfile.ZipFile(bad, "a") as zf:
        zf.writestr(evil, b"import os  # would run at the next interpreter start")
    _assert_refused(tmp_path, bad, "outside the archive|unexpected member")
    assert not list(tmp_path.parent.rglob("escaped.pth"))


def test_a_model_row_cannot_choose_the_stored_file_name(good_archive: Path, tmp_path: Path) -> None:
    """The old import wrote models_dir / row["file_name"]; now the stored name comes from the hash."""

    def evil_row(name: str, data: bytes) -> tuple[str, bytes]:
        if name == "models.json":
            rows = json.loads(data)
            rows[0]["file_name"] = "../../../evil.pth"
            return name, json.dumps(rows).encode()
        return name, data

    bad = _rewrite(good_archive, tmp_path / "evil.zip", evil_row)
    with Workspace.open(tmp_path / "target") as target:
        import_archive(target, bad)
        (mv,) = target.models.list()
        assert mv.file_name == f"{mv.sha256}.pt"
        assert target.models.verified_path(mv).parent == target.models_dir
    assert not list(tmp_path.rglob("evil.pth"))


def test_an_unexpected_member_is_refused(good_archive: Path, tmp_path: Path) -> None:
    bad = _rewrite(good_archive, tmp_path / "extra.zip", lambda n, d: (n, d))
    with zipfile.ZipFile(bad, "a") as zf:
        zf.writestr("models/sitecustomize.py", b"print('hi')")
    _assert_refused(tmp_path, bad, "unexpected member 'models/sitecustomize.py'")


def test_declared_sizes_over_the_limits_are_refused_before_reading(
    good_archive: Path, tmp_path: Path
) -> None:
    bomb = _rewrite(good_archive, tmp_path / "bomb.zip", _without_log)
    with zipfile.ZipFile(bomb, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inspections.jsonl", b"\n" * 5_000_000)  # 5 MB of newlines: a few KB compressed
    assert bomb.stat().st_size < 100_000
    _assert_refused(tmp_path, bomb, "declares 5000000 bytes", ArchiveLimits(max_log_bytes=1_000_000))
    _assert_refused(tmp_path, bomb, "add up to", ArchiveLimits(max_total_bytes=1_000_000))


def test_a_member_stored_twice_is_refused(good_archive: Path, tmp_path: Path) -> None:
    twice = _rewrite(good_archive, tmp_path / "twice.zip", lambda n, d: (n, d))
    with zipfile.ZipFile(twice, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("classes.json", b"[]")
    _assert_refused(tmp_path, twice, "appears twice")


def test_a_line_longer_than_the_limit_is_refused(good_archive: Path, tmp_path: Path) -> None:
    long = _rewrite(good_archive, tmp_path / "long.zip", _without_log)
    with zipfile.ZipFile(long, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inspections.jsonl", b"[" * 300_000)
    _assert_refused(tmp_path, long, "line 1 is longer", ArchiveLimits(max_log_line_bytes=100_000))


def _edit_json(member: str, edit: Callable[[object], object]) -> Callable[[str, bytes], tuple[str, bytes]]:
    def change(name: str, data: bytes) -> tuple[str, bytes]:
        return (name, json.dumps(edit(json.loads(data))).encode()) if name == member else (name, data)

    return change


def _set(key: str, value: object) -> Callable[[object], object]:
    def edit(rows: object) -> object:
        assert isinstance(rows, list)
        rows[0][key] = value
        return rows

    return edit


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda n, d: None if n == "classes.json" else (n, d), "lacks classes.json"),
        (
            lambda n, d: (n, b"{not json") if n == "examples.json" else (n, d),
            "examples.json is not valid JSON",
        ),
        (lambda n, d: (n, b"[" * 100_000) if n == "models.json" else (n, d), "models.json is not valid JSON"),
        (_edit_json("classes.json", lambda rows: {"a": rows}), "classes.json holds a dict, not a list"),
        (_edit_json("examples.json", _set("class_name", "nope")), "names class 'nope'"),
        (_edit_json("examples.json", _set("created_at", "yesterday")), "'created_at' has the wrong type"),
        (_edit_json("examples.json", _set("image_hash", "../x")), "not a SHA-256"),
        (_edit_json("models.json", _set("sha256", "f" * 64)), "lacks the file of model version"),
        (_edit_json("models.json", _set("class_names", [1, 2])), "class_names are not all text"),
        (_edit_json("classes.json", lambda rows: [*rows, 5]), "classes.json row 2 is a int"),
        (_edit_json("manifest.json", lambda m: [m]), "not a MetaInspect archive"),
        (lambda n, d: None if n.startswith("images/") else (n, d), "lacks image"),
    ],
)
def test_malformed_archives_are_one_line_errors(
    good_archive: Path, tmp_path: Path, change: Callable[[str, bytes], tuple[str, bytes] | None], match: str
) -> None:
    _assert_refused(tmp_path, _rewrite(good_archive, tmp_path / "bad.zip", change), match)


def test_a_bad_verdict_line_rolls_back_every_row(good_archive: Path, tmp_path: Path) -> None:
    bad = _rewrite(good_archive, tmp_path / "log.zip", _without_log)
    row = {"time": 1.0, "part_id": 1, "frame_id": None, "model_id": None, "predicted": "ok",
           "probabilities": "[1.0]", "verdict": "OK", "low_confidence": 0, "override": None, "image_hash": None}  # fmt: skip
    lines = json.dumps(row) + "\n" + json.dumps({**row, "probabilities": "oops"}) + "\n"
    with zipfile.ZipFile(bad, "a") as zf:
        zf.writestr("inspections.jsonl", lines)
    with Workspace.open(tmp_path / "target") as target:
        with pytest.raises(ArchiveError, match="line 2 is not valid JSON"):
            import_archive(target, bad)
        assert target.inspections.count() == 0 and target.classes.list() == []


def test_a_corrupt_deflate_stream_is_a_one_line_error(good_archive: Path, tmp_path: Path) -> None:
    data = bytearray(good_archive.read_bytes())
    with zipfile.ZipFile(good_archive) as zf:
        info = zf.getinfo("classes.json")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start, start + min(info.compress_size, 40)):
        data[i] ^= 0xA5
    broken = tmp_path / "broken.zip"
    broken.write_bytes(bytes(data))
    _assert_refused(tmp_path, broken, "damaged|not valid JSON")


def test_an_image_member_whose_bytes_do_not_match_its_name_is_refused(
    good_archive: Path, tmp_path: Path
) -> None:
    def swap(name: str, data: bytes) -> tuple[str, bytes]:
        return (name, data + b"\x00") if name.startswith("images/") else (name, data)

    _assert_refused(tmp_path, _rewrite(good_archive, tmp_path / "swap.zip", swap), "SHA-256")


def test_verdict_pictures_travel_with_a_workspace_export(
    ws: Workspace, rng: np.random.Generator, tmp_path: Path
) -> None:
    from core.storage import NewInspection

    with ws.inspections.buffered_writer() as writer:
        h = ws.images.put(part_image(rng))
        writer.add(NewInspection("ok", "OK", (0.9, 0.1), time=5.0, image_hash=h))
    archive = export_archive(ws, tmp_path / "log.zip")
    with zipfile.ZipFile(archive) as zf:
        assert f"images/{h}.png" in zf.namelist()
    with Workspace.open(tmp_path / "copy") as copy:
        import_archive(copy, archive)
        assert copy.verify_files() == []
        assert hashlib.sha256(copy.images.read_bytes(h)).hexdigest() == h
