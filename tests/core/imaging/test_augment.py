"""Support-set augmentation and per-image standardisation."""

from __future__ import annotations

import numpy as np
import pytest

from core.camera.synthetic import render_part
from core.imaging.augment import augment, augment_support, standardise


def test_augment_is_deterministic_and_keeps_shape_and_dtype() -> None:
    part, _ = render_part(np.random.default_rng(0), "scratch", size=64)
    a = augment(part, np.random.default_rng(1), noise=2.0)
    b = augment(part, np.random.default_rng(1), noise=2.0)
    assert np.array_equal(a, b)
    assert a.shape == part.shape and a.dtype == np.uint8
    variants = {augment(part, np.random.default_rng(s)).tobytes() for s in range(8)}
    assert len(variants) > 4


def test_geometry_only_augment_is_a_permutation_of_pixels() -> None:
    grey = np.arange(36, dtype=np.uint8).reshape(6, 6)
    out = augment(grey, np.random.default_rng(3), brightness=0, contrast=0)
    assert sorted(out.ravel().tolist()) == sorted(grey.ravel().tolist())


def test_augment_support_keeps_labels_aligned() -> None:
    rng = np.random.default_rng(0)
    images = [np.full((8, 8), v, np.uint8) for v in (10, 200)]
    x, y = augment_support(images, [0, 1], copies=3, rng=rng, flips=False, rot90=False, brightness=0.0)
    assert len(x) == len(y) == 8
    assert y == [0, 1, 0, 1, 0, 1, 0, 1]
    assert all(abs(int(img.mean()) - (10 if lab == 0 else 200)) < 5 for img, lab in zip(x, y, strict=True))
    with pytest.raises(ValueError, match="labels"):
        augment_support(images, [0], 1, rng)


def test_standardise_gives_zero_mean_unit_std_per_image() -> None:
    batch = (
        np.random.default_rng(0).uniform(0, 5, (3, 1, 8, 8)).astype(np.float32)
        + np.arange(3)[:, None, None, None]
    )
    out = standardise(batch)
    assert np.allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    assert np.allclose(out.std(axis=(1, 2, 3)), 1, atol=1e-3)
    with pytest.raises(ValueError):
        standardise(np.zeros((4, 4)))


def test_bad_images_are_rejected() -> None:
    with pytest.raises(ValueError, match="uint8"):
        augment(np.zeros((4, 4), np.float32), np.random.default_rng(0))
