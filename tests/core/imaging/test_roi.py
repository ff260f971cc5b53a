"""ROI, crops and resizing shared by capture, training and inference."""

from __future__ import annotations

import numpy as np
import pytest

from core.imaging import Preprocess, Roi, crop, resize_to, square_crop


def grid(h: int = 40, w: int = 60) -> np.ndarray:
    return (np.arange(h * w, dtype=np.int64).reshape(h, w) % 251).astype(np.uint8)


def test_crop_returns_exact_region_and_rejects_outside_rois() -> None:
    image = grid()
    assert np.array_equal(crop(image, (10, 5, 20, 7)), image[5:12, 10:30])
    assert crop(image, Roi.full(image)).shape == (40, 60)
    with pytest.raises(ValueError, match="outside"):
        crop(image, (50, 0, 20, 10))
    with pytest.raises(ValueError, match="positive"):
        Roi(0, 0, 0, 5)
    with pytest.raises(ValueError, match="inside"):
        Roi(-1, 0, 5, 5)


def test_square_crop_centres_and_pads_outside_the_image() -> None:
    image = grid()
    inner = square_crop(image, 30, 20, 10)
    assert np.array_equal(inner, image[15:25, 25:35])
    edge = square_crop(image, 2, 2, 10, border="constant")
    assert edge.shape == (10, 10)
    assert (edge[:3, :] == 0).all() and np.array_equal(edge[3:, 3:], image[:7, :7])
    colour = square_crop(np.dstack([image] * 3), 59, 39, 8)
    assert colour.shape == (8, 8, 3)
    assert np.array_equal(colour[-1, -1], colour[4, 4])  # replicated corner pixel (image[39, 59])
    with pytest.raises(ValueError, match="outside"):
        square_crop(image, 500, 500, 4)
    with pytest.raises(ValueError, match="border"):
        square_crop(image, 5, 5, 4, border="wrap")


def test_resize_to_square_and_rectangle() -> None:
    image = grid()
    assert resize_to(image, 16).shape == (16, 16)
    assert resize_to(np.dstack([image] * 3), (30, 20)).shape == (20, 30, 3)
    with pytest.raises(ValueError, match="positive"):
        resize_to(image, 0)


def test_preprocess_prepares_a_part_crop_for_the_model() -> None:
    part = square_crop(np.dstack([grid()] * 3), 30, 20, 32)
    prep = Preprocess(image_size=28, channels=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    batch = prep.batch([part, part])
    assert tuple(batch.shape) == (2, 3, 28, 28)
    assert np.isfinite(batch.numpy()).all()
