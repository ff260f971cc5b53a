"""Fixtures: a real video file and a real image folder (one image broken)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from tests.core.camera.media import numbered_image, write_video

VIDEO_FRAMES = 24


@pytest.fixture(scope="session")
def video_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-frame 160x120 MJPG AVI written with cv2.VideoWriter."""
    folder = tmp_path_factory.mktemp("video")
    return write_video(folder / "line.avi", [numbered_image(i) for i in range(VIDEO_FRAMES)])


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    """Five PNGs named out of creation order, one of them a broken file, plus a text file to ignore."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in (3, 0, 4, 1):
        assert cv2.imwrite(str(folder / f"img_{i:02d}.png"), numbered_image(i))
    (folder / "img_02.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    (folder / "notes.txt").write_text("not an image")
    return folder
