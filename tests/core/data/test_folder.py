"""ImageFolderDataset: folder trees and zips, nesting, sub-folders, broken images, clear errors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data import DataError, ImageFolderDataset
from core.imaging import Preprocess
from tests.core.data.helpers import write_image_tree, zip_tree

GREY = Preprocess(image_size=28, channels=1)


def test_nested_tree_classes_are_leaf_folders_named_relative_to_the_root(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "data", {"latin/a": 3, "latin/b": 4, "greek/alpha": 2})
    ds = ImageFolderDataset.from_path(tmp_path / "data", GREY)
    assert ds.class_names == ["greek/alpha", "latin/a", "latin/b"]
    assert ds.counts == [2, 3, 4]
    assert all(t.dtype == torch.float32 and tuple(t.shape[1:]) == (1, 28, 28) for t in ds.images)
    assert ds.skipped == ()


def test_zip_gives_the_same_classes_and_pixels_as_the_folder(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "tree", {"x/a": 3, "x/b": 3, "y/c": 2})
    from_dir = ImageFolderDataset.from_path(tmp_path / "tree", GREY)
    from_zip = ImageFolderDataset.from_path(
        zip_tree(tmp_path / "tree", tmp_path / "t.zip", prefix="top"), GREY
    )
    assert from_zip.class_names == from_dir.class_names  # the single top folder is not part of the names
    for a, b in zip(from_dir.images, from_zip.images, strict=True):
        assert torch.equal(a, b)


def test_subdir_reads_one_split_and_accepts_the_name_below_a_single_top_folder(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "tree", {"background/l/a": 2, "background/l/b": 2, "evaluation/m/c": 2})
    archive = zip_tree(tmp_path / "tree", tmp_path / "omni.zip", prefix="omni")
    full = ImageFolderDataset.from_path(archive, GREY, subdir="omni/background")
    short = ImageFolderDataset.from_path(archive, GREY, subdir="background")
    assert full.class_names == short.class_names == ["a", "b"]
    whole = ImageFolderDataset.from_path(archive, GREY)
    assert whole.class_ids_under("evaluation") == [2]
    with pytest.raises(DataError, match="'nope' not found"):
        ImageFolderDataset.from_path(archive, GREY, subdir="nope")


def test_rgb_preprocessing_resizes_and_keeps_three_channels(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "d", {"ok": 2, "bad": 2}, size=40, channels=3, ext=".jpg")
    ds = ImageFolderDataset.from_path(tmp_path / "d", Preprocess(32, 3, (0.5,) * 3, (0.25,) * 3))
    assert tuple(ds.images[0].shape) == (2, 3, 32, 32)
    assert float(ds.images[0].abs().max()) <= 2.0 + 1e-6  # (x - 0.5) / 0.25 for x in [0, 1]


def test_broken_image_is_skipped_counted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_image_tree(tmp_path / "d", {"a": 3, "b": 3})
    (tmp_path / "d" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    (tmp_path / "d" / "b" / "empty.jpg").write_bytes(b"")
    (tmp_path / "d" / "b" / "notes.txt").write_text("not an image suffix: ignored, not skipped")
    with caplog.at_level(logging.WARNING, logger="core.data.folder"):
        ds = ImageFolderDataset.from_path(tmp_path / "d", GREY)
    assert ds.counts == [3, 3]
    assert sorted(Path(s.name).name for s in ds.skipped) == ["broken.png", "empty.jpg"]
    lines = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(lines) == 1 and "skipped 2 unreadable" in lines[0] and "broken.png" in lines[0]


def test_broken_image_inside_a_zip_is_skipped(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "d", {"a": 2, "b": 2})
    (tmp_path / "d" / "a" / "bad.png").write_bytes(b"garbage")
    ds = ImageFolderDataset.from_path(zip_tree(tmp_path / "d", tmp_path / "d.zip"), GREY)
    assert ds.counts == [2, 2] and len(ds.skipped) == 1 and ds.skipped[0].name.endswith("bad.png")


def test_class_with_only_broken_images_is_an_error_naming_it(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "d", {"good": 2})
    (tmp_path / "d" / "ruined").mkdir()
    (tmp_path / "d" / "ruined" / "x.png").write_bytes(b"nope")
    with pytest.raises(DataError, match=r"class 'ruined'.*no readable images"):
        ImageFolderDataset.from_path(tmp_path / "d", GREY)


def test_empty_class_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "d", {"good": 2})
    (tmp_path / "d" / "empty").mkdir()
    with pytest.raises(DataError, match="class 'empty'"):
        ImageFolderDataset.from_path(tmp_path / "d", GREY)


def test_missing_path_non_zip_file_and_imageless_tree_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        ImageFolderDataset.from_path(tmp_path / "missing", GREY)
    (tmp_path / "f.txt").write_text("hello")
    with pytest.raises(DataError, match=r"neither a folder nor a \.zip"):
        ImageFolderDataset.from_path(tmp_path / "f.txt", GREY)
    (tmp_path / "blank").mkdir()
    with pytest.raises(DataError, match="no image folders"):
        ImageFolderDataset.from_path(tmp_path / "blank", GREY)


def test_from_arrays_groups_labelled_images_by_class() -> None:
    rng = np.random.default_rng(0)
    examples = [(rng.integers(0, 255, (30, 30), dtype=np.uint8), lab) for lab in ["ok", "nok", "ok"]]
    ds = ImageFolderDataset.from_arrays(examples, GREY)
    assert ds.class_names == ["nok", "ok"] and ds.counts == [1, 2]


def test_real_omniglot_zip_reads_one_alphabet(datasets_dir: Path) -> None:
    ds = ImageFolderDataset.from_path(datasets_dir / "omniglot28.zip", GREY, subdir="background/Latin")
    assert len(ds) == 26 and set(ds.counts) == {20}
    assert ds.class_names[0] == "character01"
    # 1-bit PNGs become exactly 0.0 / 1.0
    values = torch.unique(ds.images[0])
    assert values.tolist() == [0.0, 1.0]


def test_loose_images_in_the_root_belong_to_no_class(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "d", {"a": 2, "b": 2})
    write_image_tree(tmp_path, {"d": 1})  # d/img000.png now lies beside the class folders
    ds = ImageFolderDataset.from_path(tmp_path / "d", GREY)
    assert ds.class_names == ["a", "b"] and ds.counts == [2, 2]
