"""Baseline classifiers and the episode statistics they are reported with."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.imaging.preprocess import Preprocess
from core.lab.baselines import (
    compare_on_episodes,
    nearest_class_mean,
    raw_pixel_ncm,
    summarise,
    tensors_to_images,
    texture_ncm,
)
from core.meta import Task


def _texture_task(seed: int, k: int = 3, q: int = 4) -> Task:
    """Three classes that differ in texture, not in mean brightness: fine noise, coarse blobs, stripes."""
    rng = np.random.default_rng(seed)
    pre = Preprocess(32, 1)

    def sample(c: int) -> np.ndarray:
        if c == 0:
            img = rng.normal(128, 40, (32, 32))
        elif c == 1:
            img = np.kron(rng.normal(128, 40, (4, 4)), np.ones((8, 8)))
        else:
            phase = rng.integers(0, 8)
            img = np.tile(((np.arange(32) + phase) // 4 % 2) * 80 + 88, (32, 1)).astype(float)
        return np.clip(img, 0, 255).astype(np.uint8)

    sy = torch.arange(3).repeat_interleave(k)
    qy = torch.arange(3).repeat_interleave(q)
    sx = pre.batch([sample(int(c)) for c in sy])
    qx = pre.batch([sample(int(c)) for c in qy])
    return Task(sx, sy, qx, qy)


def test_summary_gives_mean_and_95_percent_half_width() -> None:
    s = summarise([0.5, 0.7, 0.9, 0.7])
    assert s.mean == pytest.approx(0.7)
    assert s.ci95 == pytest.approx(1.96 * np.std([0.5, 0.7, 0.9, 0.7], ddof=1) / math.sqrt(4))
    assert "70.0" in str(s) and "16.0" in str(s)
    with pytest.raises(ValueError, match="no episode"):
        summarise([])


def test_nearest_class_mean_picks_the_closest_mean() -> None:
    support = torch.tensor([[0.0, 0.0], [0.0, 2.0], [10.0, 10.0]])
    logits = nearest_class_mean(support, torch.tensor([0, 0, 1]), torch.tensor([[0.0, 1.5], [9.0, 9.0]]))
    assert logits.argmax(1).tolist() == [0, 1]


def test_texture_ncm_separates_textures_that_raw_pixels_cannot() -> None:
    pre = Preprocess(32, 1)
    tasks = [_texture_task(seed) for seed in range(6)]
    res = compare_on_episodes({"raw": raw_pixel_ncm, "texture": texture_ncm(pre)}, tasks)
    assert res["texture"].mean >= 0.95
    assert res["texture"].mean > res["raw"].mean + 0.2
    assert res["raw"].episodes == 6


def test_tensors_round_trip_to_the_original_uint8_images() -> None:
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(2)]
    pre = Preprocess(16, 3, (0.4, 0.5, 0.6), (0.2, 0.3, 0.25))
    back = tensors_to_images(pre.batch(images), pre)
    for a, b in zip(images, back, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # BGR in, BGR out


def test_malformed_episodes_are_clear_errors() -> None:
    t = _texture_task(0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        raw_pixel_ncm(t.support_x[0], t.support_y, t.query_x)
    with pytest.raises(ValueError, match="every label"):
        raw_pixel_ncm(t.support_x, t.support_y * 2, t.query_x)
    with pytest.raises(ValueError, match="differ in shape"):
        raw_pixel_ncm(t.support_x, t.support_y, t.query_x[:, :, :8])
