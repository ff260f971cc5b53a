"""EpisodeSampler and class splits: shapes, balance, seeding, relabelling, rotations, small classes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from core.data import DataError, EpisodeSampler, ImageFolderDataset, split_by_folder, split_classes
from core.imaging import Preprocess


def make_dataset(counts: list[int], size: int = 8) -> ImageFolderDataset:
    """Class ``c`` image ``i`` is filled with the value ``c * 1000 + i``, so we can tell where it came from."""
    images = [
        (torch.arange(n, dtype=torch.float32) + 1000 * c).view(n, 1, 1, 1).expand(n, 1, size, size).clone()
        for c, n in enumerate(counts)
    ]
    names = [f"split{c % 2}/class{c:02d}" for c in range(len(counts))]
    return ImageFolderDataset(names, images, Preprocess(image_size=size, channels=1))


def origin(x: torch.Tensor) -> list[tuple[int, int]]:
    """(class, image index) of each image made by :func:`make_dataset`."""
    return [(int(v) // 1000, int(v) % 1000) for v in x[:, 0, 0, 0]]


def test_episode_shapes_and_labels_cover_each_class_k_and_q_times() -> None:
    task = EpisodeSampler(make_dataset([10] * 8), n_way=5, k_shot=2, q_query=3, seed=0).sample()
    assert tuple(task.support_x.shape) == (10, 1, 8, 8) and tuple(task.query_x.shape) == (15, 1, 8, 8)
    assert task.support_y.dtype == torch.long
    assert Counter(task.support_y.tolist()) == dict.fromkeys(range(5), 2)
    assert Counter(task.query_y.tolist()) == dict.fromkeys(range(5), 3)
    # one source class per label, no image used twice in an episode
    src = origin(torch.cat([task.support_x, task.query_x]))
    labels = torch.cat([task.support_y, task.query_y]).tolist()
    assert len(set(src)) == len(src)
    assert all(len({c for (c, _), lab in zip(src, labels, strict=True) if lab == k}) == 1 for k in range(5))


def test_same_seed_same_episodes_and_other_seed_differs() -> None:
    ds = make_dataset([12] * 10)
    a = EpisodeSampler(ds, 5, 1, 2, seed=7).sample()
    b = EpisodeSampler(ds, 5, 1, 2, seed=7).sample()
    c = EpisodeSampler(ds, 5, 1, 2, seed=8).sample()
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_y, b.query_y)
    assert not torch.equal(a.support_x, c.support_x)


def test_classes_are_drawn_uniformly_and_labels_are_shuffled_per_episode() -> None:
    ds = make_dataset([5] * 10)
    sampler = EpisodeSampler(ds, 5, 1, 1, seed=1)
    picks: Counter[int] = Counter()
    label_of_class0: Counter[int] = Counter()
    for _ in range(800):
        task = sampler.sample()
        for (c, _), lab in zip(origin(task.support_x), task.support_y.tolist(), strict=True):
            picks[c] += 1
            if c == 0:
                label_of_class0[lab] += 1
    # each class expected 400 times (800 episodes * 5 / 10); binomial sd ~14
    assert all(330 < picks[c] < 470 for c in range(10)), picks
    assert len(label_of_class0) == 5 and min(label_of_class0.values()) > 40


def test_images_within_a_class_are_drawn_uniformly() -> None:
    sampler = EpisodeSampler(make_dataset([4, 4]), 2, 1, 1, seed=3)
    seen: Counter[tuple[int, int]] = Counter()
    for _ in range(400):
        seen.update(origin(sampler.sample().support_x))
    assert len(seen) == 8 and min(seen.values()) > 60  # expected 100 each


def test_class_ids_restrict_sampling_to_one_split() -> None:
    ds = make_dataset([6] * 12)
    train, test = split_classes(ds, (0.75, 0.25), seed=0)
    sampler = EpisodeSampler(ds, 3, 1, 1, seed=0, class_ids=test)
    used = {c for _ in range(50) for c, _ in origin(sampler.sample().support_x)}
    assert used <= set(test) and not used & set(train)


def test_split_classes_is_disjoint_complete_and_seeded() -> None:
    groups = split_classes(100, (0.7, 0.2, 0.1), seed=4)
    assert [len(g) for g in groups] == [70, 20, 10]
    assert sorted(i for g in groups for i in g) == list(range(100))
    assert groups == split_classes(100, (0.7, 0.2, 0.1), seed=4)
    assert groups != split_classes(100, (0.7, 0.2, 0.1), seed=5)
    with pytest.raises(ValueError, match="sum to 1"):
        split_classes(10, (0.5, 0.2))
    with pytest.raises(DataError, match="non-empty"):
        split_classes(2, (0.4, 0.3, 0.3))


def test_split_by_folder_uses_the_class_paths() -> None:
    ds = make_dataset([3] * 6)
    even, odd = split_by_folder(ds, "split0", "split1")
    assert even == [0, 2, 4] and odd == [1, 3, 5]
    with pytest.raises(DataError, match="no classes under 'split9'"):
        split_by_folder(ds, "split9")


def test_rotations_make_four_classes_of_each_folder() -> None:
    # class c has its top row set to c + 1 and zeros elsewhere, so the marked edge tells the rotation
    images = [torch.zeros(3, 1, 8, 8) for _ in range(2)]
    for c, imgs in enumerate(images):
        imgs[:, :, 0, :] = c + 1
    ds = ImageFolderDataset(["a", "b"], images, Preprocess(image_size=8, channels=1))
    sampler = EpisodeSampler(ds, 8, 1, 1, seed=0, rotations=True)
    assert sampler.num_classes == 8
    seen = set()
    for x in sampler.sample().support_x:
        edges = [x[0, 0, 1:-1], x[0, 1:-1, 0], x[0, -1, 1:-1], x[0, 1:-1, -1]]  # top, left, bottom, right
        (side,) = [i for i, e in enumerate(edges) if bool((e > 0).all())]
        seen.add((int(edges[side][0]), side))
    assert seen == {(c, side) for c in (1, 2) for side in range(4)}


def test_too_few_images_is_an_error_naming_the_short_classes() -> None:
    ds = make_dataset([10, 10, 2, 10])
    with pytest.raises(DataError, match=r"only 3 of 4 qualify.*'split0/class02' \(2\)"):
        EpisodeSampler(ds, 4, 1, 5, seed=0)
    sampler = EpisodeSampler(ds, 3, 1, 5, seed=0)  # enough other classes: the short one is skipped
    assert sampler.skipped_classes == ("split0/class02",)


def test_partial_queries_use_the_rest_of_a_small_class() -> None:
    ds = make_dataset([3, 20, 20])
    task = EpisodeSampler(ds, 3, 1, 15, seed=0, partial_queries=True).sample()
    per_label = Counter(task.query_y.tolist())
    assert sorted(per_label.values()) == [2, 15, 15]
    with pytest.raises(DataError):
        EpisodeSampler(make_dataset([1, 20, 20]), 3, 1, 15, seed=0, partial_queries=True)


def test_augment_hook_sees_every_batch_with_the_sampler_rng() -> None:
    calls: list[tuple[int, ...]] = []

    def flip(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        calls.append(tuple(x.shape))
        assert isinstance(rng, np.random.Generator)
        return -x

    task = EpisodeSampler(make_dataset([5] * 3), 2, 1, 2, seed=0, augment=flip).sample()
    assert calls == [(2, 1, 8, 8), (4, 1, 8, 8)]
    assert float(task.support_x.max()) <= 0.0


def test_sampler_state_round_trip_resumes_the_same_stream() -> None:
    sampler = EpisodeSampler(make_dataset([6] * 6), 3, 1, 1, seed=2)
    sampler.sample()
    state = sampler.get_state()
    expected = sampler.sample()
    other = EpisodeSampler(make_dataset([6] * 6), 3, 1, 1, seed=99)
    other.set_state(state)
    assert torch.equal(other.sample().support_x, expected.support_x)
