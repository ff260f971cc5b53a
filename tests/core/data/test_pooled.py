"""PooledEpisodeSampler: class-balanced, one source per episode, varying ways and shots, small classes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from core.data import ImageFolderDataset, PooledEpisodeSampler, source_groups
from core.imaging import Preprocess
from core.imaging.augment import TensorAugment


def _pool(sources: dict[str, list[int]]) -> ImageFolderDataset:
    """Every image of class i (in name order) is filled with the value i / 100, so episodes can be read back."""
    names, images = [], []
    for source, counts in sources.items():
        for c, n in enumerate(counts):
            names.append(f"{source}/c{c}")
            images.append(torch.full((n, 1, 4, 4), len(images) / 100.0))
    return ImageFolderDataset(names, images, Preprocess(4, 1))


def _classes_of(x: torch.Tensor) -> set[int]:
    return {round(float(v) * 100) for v in x[:, 0, 0, 0]}


def test_groups_are_sources() -> None:
    names = ["three/c0", "three/c1", "three/c2", "two/c0", "two/c1", "one/c0", "synthetic/disc/scratch",
             "synthetic/disc/dent"]  # fmt: skip
    assert source_groups(names) == {"synthetic/disc": [7, 6], "three": [0, 1, 2], "two": [3, 4]}


def test_every_class_is_equally_likely_whatever_its_image_count() -> None:
    pool = _pool({"a": [3, 60, 10, 300]})
    sampler = PooledEpisodeSampler(pool, shots=(1,), queries=2, seed=0, ways=2)
    counts: Counter[int] = Counter()
    draws = 4000
    for _ in range(draws):
        counts.update(_classes_of(sampler.sample().support_x))
    # each class is in a 2-of-4 episode with probability 1/2: 2000 +- 3 sd (sd ~ 32)
    assert sorted(counts) == [0, 1, 2, 3]
    assert all(abs(n - draws / 2) < 100 for n in counts.values()), counts


def test_episodes_stay_within_one_source_with_varying_ways_and_shots() -> None:
    pool = _pool({"a": [8] * 5, "b": [8] * 3})
    sampler = PooledEpisodeSampler(pool, shots=(1, 3), queries=2, seed=1, max_ways=4)
    ways, shots = Counter(), Counter()
    for _ in range(300):
        task = sampler.sample()
        classes = _classes_of(task.support_x)
        assert classes <= set(range(5)) or classes <= {5, 6, 7}
        n = len(classes)
        ways[n] += 1
        shots[len(task.support_y) // n] += 1
        assert task.support_y.tolist() == sorted(task.support_y.tolist())
        assert set(task.query_y.tolist()) == set(range(n))
    assert set(ways) == {2, 3, 4} and set(shots) == {1, 3}


def test_small_classes_give_their_remaining_images_as_queries() -> None:
    pool = _pool({"a": [3, 3, 20]})
    task = PooledEpisodeSampler(pool, shots=(2,), queries=5, seed=0, ways=3).sample()
    assert len(task.support_y) == 6 and sorted(Counter(task.query_y.tolist()).values()) == [1, 1, 5]


def test_fixed_ways_larger_than_every_source_is_a_clear_error() -> None:
    pool = _pool({"three": [8] * 3, "two": [8] * 2})
    with pytest.raises(ValueError, match="at least 4 classes"):
        PooledEpisodeSampler(pool, shots=(1,), queries=2, ways=4)
    # fixed 3 ways: the two-class source is left out
    sampler = PooledEpisodeSampler(pool, shots=(1,), queries=2, ways=3)
    assert all(_classes_of(sampler.sample().support_x) == {0, 1, 2} for _ in range(20))


def test_augmentation_is_per_class_and_keeps_shapes_and_labels() -> None:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(6, 1, 8, 8, generator=g) for _ in range(3)]
    pool = ImageFolderDataset(["s/a", "s/b", "s/c"], images, Preprocess(8, 1))
    plain = PooledEpisodeSampler(pool, shots=(2,), queries=2, seed=3, ways=3).sample()
    aug = PooledEpisodeSampler(
        pool, shots=(2,), queries=2, seed=3, ways=3, augment=TensorAugment.preset("surface")
    ).sample()
    assert aug.support_x.shape == plain.support_x.shape and aug.query_x.shape == plain.query_x.shape
    assert torch.equal(aug.support_y, plain.support_y) and torch.equal(aug.query_y, plain.query_y)
    assert not torch.equal(aug.support_x, plain.support_x)
    assert float(aug.support_x.min()) >= 0.0 and float(aug.support_x.max()) <= 1.0


def test_state_round_trip_repeats_the_episodes() -> None:
    sampler = PooledEpisodeSampler(_pool({"a": [6] * 4}), shots=(1, 2), queries=2, seed=5)
    sampler.sample()
    state = sampler.get_state()
    first = sampler.sample()
    sampler.set_state(state)
    again = sampler.sample()
    assert torch.equal(first.support_x, again.support_x) and np.array_equal(first.query_y, again.query_y)
