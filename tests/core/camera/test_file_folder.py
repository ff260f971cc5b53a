"""Video files and image folders through real OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.camera import SourceReadError, open_source
from core.camera.folder import FolderSource
from tests.core.camera.conftest import VIDEO_FRAMES
from tests.core.camera.media import numbered_image, write_video


def _level(image: np.ndarray) -> float:
    return float(np.median(image[:10]))


def test_video_written_with_videowriter_reads_back_in_order(video_path: Path) -> None:
    with open_source(f"file:{video_path}") as source:
        frames = list(source)
    assert len(frames) == VIDEO_FRAMES
    assert frames[0].image.shape == (120, 160, 3)
    assert [f.frame_id for f in frames] == list(range(VIDEO_FRAMES))
    expected = [_level(numbered_image(i)) for i in range(VIDEO_FRAMES)]
    assert np.allclose([_level(f.image) for f in frames], expected, atol=4)


def test_video_loop_restarts_at_the_end(video_path: Path) -> None:
    source = open_source(f"file:{video_path}?loop=1")
    frames = [source.read() for _ in range(VIDEO_FRAMES + 5)]
    source.release()
    assert all(f is not None for f in frames)
    assert abs(_level(frames[VIDEO_FRAMES].image) - _level(frames[0].image)) < 4


def test_truncated_video_raises_read_error_not_silent_end(tmp_path: Path, video_path: Path) -> None:
    data = video_path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    source = open_source(f"file:{cut}")
    read = 0
    with pytest.raises(SourceReadError, match="truncated"):
        while source.read() is not None:
            read += 1
    assert 0 < read < VIDEO_FRAMES


def test_folder_reads_images_in_name_order_and_reports_broken_one(image_folder: Path) -> None:
    source = open_source(f"folder:{image_folder}")
    assert isinstance(source, FolderSource)
    frames = list(source)
    assert [round(_level(f.image)) for f in frames] == [
        round(_level(numbered_image(i))) for i in (0, 1, 3, 4)
    ]
    assert len(source.skipped) == 1
    assert source.skipped[0].path.name == "img_02.png"
    assert "broken" in source.skipped[0].reason


def test_folder_loop_and_grey(image_folder: Path) -> None:
    source = open_source(f"folder:{image_folder}?loop=1,grey=1")
    frames = [source.read() for _ in range(9)]
    assert all(f is not None and f.image.ndim == 2 for f in frames)
    assert len(source.skipped) == 1  # the broken file is counted once, not on every pass
    assert np.array_equal(frames[0].image, frames[4].image)


def test_folder_with_only_broken_images_and_loop_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"nope")
    source = open_source(f"folder:{tmp_path}?loop=1")
    with pytest.raises(Exception, match="none of the 1 images"):
        source.read()


def test_grey_video_frames_are_colour_decoded(tmp_path: Path) -> None:
    frames = [cv2.cvtColor(numbered_image(i), cv2.COLOR_BGR2GRAY) for i in range(3)]
    path = write_video(tmp_path / "g.avi", [cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in frames])
    with open_source(f"file:{path}") as source:
        assert [f.image.shape for f in source] == [(120, 160, 3)] * 3
