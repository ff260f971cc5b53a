"""Regions of interest and geometric crops shared by capture (part trigger), training and inference."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Roi:
    """An axis-aligned region ``(x, y, w, h)`` in image pixels."""

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        if self.w <= 0 or self.h <= 0:
            raise ValueError(f"ROI width and height must be positive, got {self.w}x{self.h}")
        if self.x < 0 or self.y < 0:
            raise ValueError(f"ROI origin must be inside the image (x, y >= 0), got ({self.x}, {self.y})")

    @classmethod
    def full(cls, image: np.ndarray) -> Roi:
        """The whole image."""
        h, w = image.shape[:2]
        return cls(0, 0, w, h)

    @classmethod
    def coerce(cls, value: Roi | tuple[int, int, int, int] | None, image: np.ndarray) -> Roi:
        """``None`` (whole image), a tuple or a :class:`Roi` -> :class:`Roi` checked against ``image``."""
        roi = cls.full(image) if value is None else value if isinstance(value, Roi) else cls(*map(int, value))
        roi.check(image)
        return roi

    def check(self, image: np.ndarray) -> None:
        """Raise ``ValueError`` unless the ROI lies inside ``image``."""
        h, w = image.shape[:2]
        if self.x + self.w > w or self.y + self.h > h:
            raise ValueError(f"ROI {self.as_tuple()} reaches outside the {w}x{h} image; shrink it or move it")

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(x, y, w, h)``."""
        return (self.x, self.y, self.w, self.h)


def crop(image: np.ndarray, roi: Roi | tuple[int, int, int, int]) -> np.ndarray:
    """View of ``image`` inside ``roi`` (``(h, w)`` or ``(h, w, C)``); the ROI must lie inside the image."""
    r = Roi.coerce(roi, image)
    return image[r.y : r.y + r.h, r.x : r.x + r.w]


def square_crop(
    image: np.ndarray, cx: float, cy: float, side: int, *, border: str = "replicate"
) -> np.ndarray:
    """Square ``side x side`` crop centred on ``(cx, cy)``; parts outside the image are padded.

    Parameters
    ----------
    image
        ``(H, W)`` or ``(H, W, C)`` array.
    border
        ``"replicate"`` (repeat edge pixels) or ``"constant"`` (black).
    """
    if side < 1:
        raise ValueError(f"crop side must be at least 1 pixel, got {side}")
    modes = {"replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}
    if border not in modes:
        raise ValueError(f"border must be one of {sorted(modes)}, got {border!r}")
    h, w = image.shape[:2]
    x0 = round(cx - side / 2)
    y0 = round(cy - side / 2)
    x1, y1 = x0 + side, y0 + side
    inner = image[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    if inner.size == 0:
        raise ValueError(f"crop centred at ({cx:.0f}, {cy:.0f}) lies outside the {w}x{h} image")
    pads = (max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0))
    if any(pads):
        return cv2.copyMakeBorder(inner, *pads, modes[border], value=0)
    return inner.copy()


def resize_to(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (square side or ``(w, h)``), INTER_AREA when shrinking, INTER_LINEAR otherwise."""
    w, h = (size, size) if isinstance(size, int) else size
    if w < 1 or h < 1:
        raise ValueError(f"target size must be positive, got {size}")
    shrinking = image.shape[1] > w or image.shape[0] > h
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
