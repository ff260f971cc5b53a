"""Property-based fuzzing (hypothesis) of what reaches a line PC from outside: images, archives, checkpoints.

Each input is a real file damaged (bit flips, cuts, spliced garbage, zeroed runs), garbage, a header
declaring a huge size, or a real file with one field replaced by a value of any type. The only acceptable
outcomes are success or the module's own one-line error, with resident memory bounded and nothing written
outside the workspace. The examples are derandomized (tests/conftest.py), so a failure reproduces.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.imaging.image_header import MAX_IMAGE_PIXELS
from core.storage import StorageError, Workspace, export_archive, import_archive
from core.storage.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.storage.files import decode_image
from tests.core.storage.conftest import part_image
from tests.core.storage.test_checkpoint import PREP, tiny_learner
from tests.fuzzing import damaged, peak_memory_growth, sentinel_tree, tree_state

# A decode may fill at most MAX_IMAGE_PIXELS pixels of 4 bytes, plus the decoder's own buffers.
DECODE_MEMORY_MB = 4 * MAX_IMAGE_PIXELS / 2**20 + 150
FIXTURES_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


def _encoded(ext: str) -> bytes:
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


GOOD_IMAGES = {ext: _encoded(ext) for ext in (".png", ".jpg", ".bmp", ".tiff", ".webp", ".ppm")}


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


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A complete small JPEG whose frame header declares ``width x height`` (libjpeg pads the rest grey)."""
    data = bytearray(GOOD_IMAGES[".jpg"])
    at = data.find(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _bmp_declaring(width: int, height: int) -> bytes:
    """A 24-bit BMP header declaring ``width x height`` (negative height: top-down), with 100 bytes of pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 100, 0, 0, 54) + info + bytes(100)


def _decodes_or_value_error(data: bytes) -> None:
    with peak_memory_growth() as grew:
        try:
            image = decode_image(data)
        except ValueError as exc:  # the only error allowed, in one line
            assert len(str(exc).splitlines()) == 1
        else:
            assert image.size <= 4 * MAX_IMAGE_PIXELS
            del image
    assert not grew or grew[0] < DECODE_MEMORY_MB, (
        f"decoding {len(data)} bytes peaked {grew[0]:.0f} MB higher"
    )


def test_a_png_bomb_within_opencvs_own_limit_is_refused_before_decoding() -> None:
    bomb = _png_declaring(12_000, 12_000, full=True)  # 144 MB of pixels in well under 1 MB
    assert len(bomb) < 1_000_000
    with pytest.raises(ValueError, match="declares 12000 x 12000 pixels"):
        decode_image(bomb)


@pytest.mark.parametrize("size", [(100_000, 100_000), (20_000, 20_000), (1, 1 << 31)])
def test_a_png_declaring_a_huge_picture_is_refused_from_its_header(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=r"declares|not a readable image"):
        decode_image(_png_declaring(*size))


@pytest.mark.parametrize("make", [_jpeg_declaring, _bmp_declaring])
def test_a_jpeg_or_bmp_declaring_a_huge_picture_is_refused_before_decoding(make: Any) -> None:
    # Regression (found while writing the fuzzing below): a 600-byte JPEG declaring 20000 x 20000 decoded to 1.2 GB of grey.
    with peak_memory_growth() as grew, pytest.raises(ValueError, match="declares 20000 x 20000 pixels"):
        decode_image(make(20_000, 20_000))
    assert not grew or grew[0] < 50


def test_a_truncated_jpeg_is_refused_not_padded_with_grey() -> None:
    # Regression: libjpeg decodes a cut-off JPEG to a full picture, the missing part grey, and says nothing.
    good = GOOD_IMAGES[".jpg"]
    assert decode_image(good).shape == (32, 32, 3)
    with pytest.raises(ValueError, match="truncated JPEG"):
        decode_image(good[: len(good) * 2 // 3])


@settings(max_examples=150)
@given(st.sampled_from(sorted(GOOD_IMAGES)).flatmap(lambda ext: damaged(GOOD_IMAGES[ext])))
def test_damaged_images_decode_or_raise_value_error(data: bytes) -> None:
    _decodes_or_value_error(data)


MAGICS = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"RIFF",
    b"P6\n",
    b"GIF89a",
]


@settings(max_examples=100)
@given(st.sampled_from(MAGICS), st.binary(max_size=2048))
def test_garbage_behind_any_magic_number_decodes_or_raises_value_error(magic: bytes, rest: bytes) -> None:
    _decodes_or_value_error(magic + rest)


@settings(max_examples=60)
@given(
    st.sampled_from([_png_declaring, _jpeg_declaring, _bmp_declaring]),
    st.integers(0, 65_535),
    st.integers(0, 65_535),
)
def test_any_declared_size_is_refused_from_the_header_or_decoded_within_the_limit(
    make: Any, width: int, height: int
) -> None:
    data = make(width, height)
    if width * height > MAX_IMAGE_PIXELS:
        with peak_memory_growth() as grew, pytest.raises(ValueError, match="declares"):
            decode_image(data)
        assert not grew or grew[0] < 50
    else:
        _decodes_or_value_error(data)


# -- archives ------------------------------------------------------------------------------------------------


@pytest.fixture
def good_archive(ws: Workspace, rng: np.random.Generator, tmp_path: Path) -> Path:
    ws.examples.add(part_image(rng), "ok")
    ws.examples.add(part_image(rng), "scratch")
    (tmp_path / "m.pt").write_bytes(b"weights")
    ws.models.register(
        tmp_path / "m.pt", algorithm="protonet", class_names=["ok", "scratch"], example_ids=[1, 2]
    )
    return export_archive(ws, tmp_path / "good.zip")


class _Importer:
    """Imports archives into fresh workspaces placed inside a sentinel tree, which must never change."""

    def __init__(self, root: Path) -> None:
        self.outside = sentinel_tree(root / "outside")
        self.targets = self.outside / "a" / "b" / "targets"
        self.inbox = root / "inbox"
        self.inbox.mkdir()
        self.before = tree_state(self.outside, skip=self.targets)
        self.count = 0

    def check(self, archive: bytes) -> None:
        self.count += 1
        bad = self.inbox / "in.zip"
        bad.write_bytes(archive)
        with peak_memory_growth() as grew, Workspace.open(self.targets / str(self.count)) as target:
            try:
                import_archive(target, bad)
            except StorageError as exc:
                assert len(str(exc).splitlines()) == 1
                assert target.classes.list() == [] and target.models.list() == []
        assert not grew or grew[0] < 200
        assert tree_state(self.outside, skip=self.targets) == self.before
        assert sorted(p.name for p in self.inbox.iterdir()) == ["in.zip"]


@settings(max_examples=30, suppress_health_check=FIXTURES_OK)
@given(data=st.data())
def test_damaged_archives_import_or_raise_storage_error_and_write_nothing_outside(
    good_archive: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    importer = _Importer(tmp_path_factory.mktemp("fuzz"))
    importer.check(data.draw(damaged(good_archive.read_bytes())))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a parsed JSON document (the root included) a value could be swapped."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*prefix, i))
    return found


def _swap(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[path[0]] = _swap(doc[path[0]], path[1:], new)
    return copy


@st.composite
def _edited_archive(draw: st.DrawFn, good: bytes) -> bytes:
    """``good`` with one value somewhere in one JSON member (or one member's name) replaced by anything."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        names = zin.namelist()
        target = draw(st.sampled_from(names))
        for name in names:
            body = zin.read(name)
            if name == target and name.endswith(".json"):
                doc = json.loads(body)
                where = draw(st.sampled_from(_paths(doc)))
                body = json.dumps(_swap(doc, where, draw(JSON_VALUES))).encode()
            elif name == target:
                name = draw(st.sampled_from(["../", "/", "models/../../", "C:/", "", "models/"])) + draw(
                    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=30)
                )
            zout.writestr(name, body)
    return out.getvalue()


@settings(max_examples=40, suppress_health_check=FIXTURES_OK)
@given(data=st.data())
def test_archives_with_any_value_or_name_swapped_import_or_raise_storage_error(
    good_archive: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    importer = _Importer(tmp_path_factory.mktemp("fuzz"))
    importer.check(data.draw(_edited_archive(good_archive.read_bytes())))


# -- checkpoints ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ck") / "m.pt"
    save_checkpoint(path, tiny_learner(), preprocess=PREP, class_names=["a", "b", "c"], provenance={})
    return path


def _loads_or_checkpoint_error(path: Path) -> None:
    with peak_memory_growth() as grew:
        try:
            load_checkpoint(path)
        except CheckpointError as exc:
            assert len(str(exc).splitlines()) == 1
    assert not grew or grew[0] < 200


@settings(max_examples=30, suppress_health_check=FIXTURES_OK)
@given(data=st.data())
def test_damaged_checkpoints_load_or_raise_checkpoint_error(
    good_checkpoint: Path, tmp_path: Path, data: st.DataObject
) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(data.draw(damaged(good_checkpoint.read_bytes())))
    _loads_or_checkpoint_error(path)


FIELD_VALUES = JSON_VALUES | st.builds(torch.zeros, st.lists(st.integers(0, 4), max_size=3).map(tuple))
# The fields of a saved checkpoint and the keys inside its config sections (None: the whole field).
FIELDS = {
    "adapt_steps": [None], "class_names": [None], "format": [None], "format_version": [None],
    "learner": [None, "first_order", "inner_lr", "inner_steps", "n_way", "name", "extra"],
    "model": [None, "image_size", "in_channels", "n_way", "name", "norm", "width", "extra"],
    "preprocess": [None, "channels", "image_size", "mean", "std", "extra"],
    "provenance": [None, "date", "git_commit"], "state_dict": [None, "extra"],
    "support_x": [None], "support_y": [None], "training_state": [None],
}  # fmt: skip
EDITS = st.sampled_from(sorted(FIELDS)).flatmap(
    lambda key: st.tuples(st.just(key), st.sampled_from(FIELDS[key]))
)


@settings(max_examples=40, suppress_health_check=FIXTURES_OK)
@given(EDITS, FIELD_VALUES)
def test_checkpoints_with_any_field_replaced_load_or_raise_checkpoint_error(
    good_checkpoint: Path, tmp_path: Path, edit: tuple[str, str | None], value: Any
) -> None:
    payload = torch.load(good_checkpoint, weights_only=True)
    key, sub = edit
    payload[key] = value if sub is None else {**payload[key], sub: value}
    path = tmp_path / "m.pt"
    torch.save(payload, path)
    _loads_or_checkpoint_error(path)
