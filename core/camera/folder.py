"""``folder:<dir>``: the images of a folder in name order, as if a camera had taken them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.camera.frame import Frame, SourceError
from core.camera.source import SOURCES, FrameSource, check_options, option
from core.imaging.image_header import check_encoded_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


@dataclass(frozen=True)
class SkippedImage:
    """An image file that could not be decoded and was skipped."""

    path: Path
    reason: str


class FolderSource(FrameSource):
    """Images of one folder (not recursive) in name order.

    Unreadable images are skipped; they are counted in :attr:`skipped` (path and reason), never raised.

    Parameters
    ----------
    path
        The folder.
    loop
        Start again after the last image instead of ending.
    fps
        Pace reads to this rate (0: as fast as they are asked for).
    grey
        Deliver grey ``(H, W)`` images instead of BGR.
    """

    def __init__(
        self, name: str, path: Path, loop: bool = False, fps: float = 0.0, grey: bool = False
    ) -> None:
        super().__init__(name)
        self.path = path
        self.loop = loop
        self.fps = fps
        self.grey = grey
        self.files: list[Path] = []
        self.skipped: list[SkippedImage] = []
        self._index = 0
        self._next_time = 0.0

    def _open(self) -> None:
        if not self.path.is_dir():
            raise SourceError(f"could not open source {self.name!r}: {self.path} is not a folder")
        self.files = sorted(
            p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not self.files:
            raise SourceError(
                f"could not open source {self.name!r}: no images ({', '.join(IMAGE_SUFFIXES)}) in {self.path}"
            )
        self.skipped = []
        self._index = 0
        self._next_time = time.monotonic()

    def _decode(self, path: Path) -> np.ndarray | None:
        flag = cv2.IMREAD_GRAYSCALE if self.grey else cv2.IMREAD_COLOR
        try:
            data = np.fromfile(path, dtype=np.uint8)  # fromfile + imdecode copes with non-ASCII paths
        except OSError as exc:
            self.skipped.append(SkippedImage(path, f"cannot read file: {exc}"))
            return None
        try:
            check_encoded_image(data.tobytes(), "the file")
        except ValueError as exc:  # truncated, or a header declaring a huge picture
            self.skipped.append(SkippedImage(path, f"not a decodable image (broken: {exc})"))
            return None
        image = cv2.imdecode(data, flag) if data.size else None
        if image is None:
            self.skipped.append(SkippedImage(path, "not a decodable image (broken or empty file)"))
        return image

    def _read(self) -> Frame | None:
        tried = 0
        while tried < len(self.files):
            if self._index >= len(self.files):
                if not self.loop:
                    return None
                self._index = 0
            path = self.files[self._index]
            self._index += 1
            tried += 1
            if any(s.path == path for s in self.skipped):
                continue
            image = self._decode(path)
            if image is None:
                continue
            if self.fps > 0:
                delay = self._next_time - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self._next_time = max(self._next_time, time.monotonic() - 1.0) + 1.0 / self.fps
            return Frame(image=image, frame_id=self._stamp(), timestamp=time.monotonic(), source=self.name)
        if not self.loop:
            return None
        raise SourceError(
            f"source {self.name!r}: none of the {len(self.files)} images in {self.path} decodes"
        )

    def _release(self) -> None:
        self.files = []


@SOURCES.register("folder")
def _folder(target: str, options: dict[str, str]) -> FrameSource:
    spec = f"folder:{target}"
    check_options(options, {"loop", "fps", "grey"}, spec)
    if not target:
        raise ValueError("folder source needs a path: 'folder:/path/to/images'")
    return FolderSource(
        spec,
        Path(target).expanduser(),
        loop=option(options, "loop", False, bool, spec),
        fps=option(options, "fps", 0.0, float, spec),
        grey=option(options, "grey", False, bool, spec),
    )
