"""Seeded mutation fuzzing of what reaches a line PC from outside: images, archives, checkpoints.

Each input is a real file damaged at random (bit flips, cuts, spliced garbage); the only acceptable outcomes
are success or the module's own one-line error, and nothing written outside the workspace. Seeds are fixed
so a failure reproduces; a property-based library (hypothesis) could replace the loops once it is a
dependency.
"""

from __future__ import annotations

import contextlib
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from core.storage import StorageError, Workspace, export_archive, import_archive
from core.storage.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.storage.files import decode_image, encode_png
from tests.core.storage.conftest import part_image
from tests.core.storage.test_checkpoint import PREP, tiny_learner


def _mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    kind = rng.choice(["flip", "cut", "splice", "zero"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif kind == "cut":
        del out[rng.randrange(1, len(out)) :]
    elif kind == "splice":
        at = rng.randrange(len(out))
        out[at:at] = rng.randbytes(rng.randint(1, 64))
    else:
        at = rng.randrange(len(out))
        out[at : at + rng.randint(1, 256)] = bytes(min(256, len(out) - at))
    return bytes(out)


def _png_declaring(width: int, height: int, *, full: bool = False) -> bytes:
    """A grey PNG declaring ``width x height``; with ``full``, all its (zero) pixels, deflated: a bomb of
    ``width * height`` bytes decoded from about a thousandth of that."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    if full:
        packer, row = zlib.compressobj(9), bytes(width + 1)  # filter byte + pixels
        pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    else:
        pixels = zlib.compress(bytes(100))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def test_a_png_bomb_within_opencvs_own_limit_is_refused_before_decoding() -> None:
    bomb = _png_declaring(12_000, 12_000, full=True)  # 144 MB of pixels in well under 1 MB
    assert len(bomb) < 1_000_000
    with pytest.raises(ValueError, match="declares 12000 x 12000 pixels"):
        decode_image(bomb)


@pytest.mark.parametrize("size", [(100_000, 100_000), (20_000, 20_000), (1, 1 << 31)])
def test_a_png_declaring_a_huge_picture_is_refused_from_its_header(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=r"declares|not a readable image"):
        decode_image(_png_declaring(*size))


def test_damaged_images_decode_or_raise_value_error() -> None:
    rng = random.Random(11)
    good = encode_png(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    for _ in range(300):
        with contextlib.suppress(ValueError):  # the only error allowed
            decode_image(_mutate(good, rng))


def test_damaged_archives_import_or_raise_storage_error_and_write_nothing_outside(
    ws: Workspace, rng: np.random.Generator, tmp_path: Path
) -> None:
    ws.examples.add(part_image(rng), "ok")
    ws.examples.add(part_image(rng), "scratch")
    (tmp_path / "m.pt").write_bytes(b"weights")
    ws.models.register(tmp_path / "m.pt", algorithm="protonet", class_names=["ok", "scratch"])
    good = export_archive(ws, tmp_path / "good.zip").read_bytes()
    chooser = random.Random(20261201)
    outside = tmp_path / "outside"
    outside.mkdir()
    before = {p for p in tmp_path.rglob("*") if "target" not in p.parts}
    for i in range(40):
        bad = outside / "bad.zip"
        bad.write_bytes(_mutate(good, chooser))
        with Workspace.open(tmp_path / "target" / str(i)) as target:
            try:
                import_archive(target, bad)
            except StorageError as exc:
                assert len(str(exc).splitlines()) == 1
                assert target.classes.list() == [] and target.models.list() == []
        bad.unlink()
    assert {p for p in tmp_path.rglob("*") if "target" not in p.parts} == before


def test_damaged_checkpoints_load_or_raise_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, tiny_learner(), preprocess=PREP, class_names=["a", "b", "c"], provenance={})
    good = path.read_bytes()
    chooser = random.Random(7)
    torch.manual_seed(0)
    for _ in range(40):
        path.write_bytes(_mutate(good, chooser))
        try:
            load_checkpoint(path)
        except CheckpointError as exc:
            assert len(str(exc).splitlines()) == 1
