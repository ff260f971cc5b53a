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


def test_tensor_augment_keeps_shape_range_and_is_seeded() -> None:
    import torch

    from core.imaging.augment import TensorAugment

    x = torch.rand(5, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    surface = TensorAugment.preset("surface")
    assert surface is not None
    a, b = surface(x, np.random.default_rng(4)), surface(x, np.random.default_rng(4))
    assert torch.equal(a, b) and a.shape == x.shape and a.dtype == x.dtype
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal((a * 255).round(), a * 255)  # 8-bit levels
    variants = {surface(x, np.random.default_rng(s)).sum().item() for s in range(6)}
    assert len(variants) == 6


def test_geometric_tensor_augment_only_moves_pixels_and_shares_the_turn() -> None:
    import torch

    from core.imaging.augment import TensorAugment

    x = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4)
    out = TensorAugment()(x, np.random.default_rng(2))
    for i in range(2):
        assert sorted(out[i].flatten().tolist()) == sorted(x[i].flatten().tolist())
    # one transform for the whole batch: the second image is the first one shifted by 16
    assert torch.equal(out[1] - out[0], torch.full((1, 4, 4), 16.0))


def test_tensor_augment_settings_are_validated() -> None:
    from core.imaging.augment import TensorAugment

    assert TensorAugment.from_value(None) is None and TensorAugment.from_value("none") is None
    assert TensorAugment.from_value({"noise": 0.01}) == TensorAugment(noise=0.01)
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        TensorAugment.from_value("wild")
    with pytest.raises(ValueError, match="unknown augment field"):
        TensorAugment.from_value({"hue": 0.1})
    with pytest.raises(ValueError, match="blur"):
        TensorAugment(blur=2.0)
