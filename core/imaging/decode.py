"""The one decoder for encoded image bytes from outside (files, archives, the workspace): header checks first
(:mod:`core.imaging.image_header`), then OpenCV; every failure is a ``ValueError`` that says what is wrong."""

from __future__ import annotations

import cv2
import numpy as np

from core.imaging.image_header import check_encoded_image

__all__ = ["decode_image"]


def decode_image(data: bytes, *, what: str = "image", flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """Decode encoded image bytes to an OpenCV array, as stored (``flags``: OpenCV's ``IMREAD_*``, e.g.
    ``IMREAD_COLOR`` for 8-bit BGR whatever the file holds).

    Raises
    ------
    ValueError
        When the bytes are not a complete image OpenCV can read (e.g. a truncated file), or declare more
        than :data:`core.imaging.image_header.MAX_IMAGE_PIXELS` pixels.
    """
    check_encoded_image(data, what)  # truncated PNG/JPEG, or a header declaring a huge picture
    try:
        arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as exc:  # e.g. OpenCV's own pixel limit, or a header it rejects
        raise ValueError(
            f"{what} is not a readable image: {str(exc).strip().splitlines()[-1][:200]}"
        ) from None
    if arr is None:
        raise ValueError(
            f"{what} is not a readable image ({len(data)} bytes); it may be truncated or not an image"
        )
    return arr
