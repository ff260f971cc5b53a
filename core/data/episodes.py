"""Episodic N-way K-shot Q-query sampling and class-disjoint splits.

Sampling is class-balanced: N classes are drawn uniformly without replacement, then K + Q images uniformly
without replacement within each. Labels are 0..N-1 in a fresh random order every episode, so a learner cannot
memorise "class 3 is always the third folder". Everything is driven by one seeded ``numpy`` Generator, so a
seed gives the same episodes on every machine, and its state can be saved to resume a run exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from core.data.folder import DataError, ImageFolderDataset
from core.meta import Task

log = logging.getLogger(__name__)

#: ``augment(images (B, C, H, W) float32, rng) -> images (B, C, H, W)``; called on support and query batches.
#: :class:`core.imaging.augment.TensorAugment` is the project's one implementation.
Augment = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]


class EpisodeSampler:
    """Draws :class:`~core.meta.Task` episodes from an :class:`ImageFolderDataset`.

    Parameters
    ----------
    dataset
        Source of classes and prepared images.
    n_way, k_shot, q_query
        Classes per task, support images per class, query images per class.
    seed
        Seed of the sampler's ``numpy.random.Generator``.
    class_ids
        Only sample these classes (e.g. one side of :func:`split_classes`); default all.
    rotations
        Omniglot-style augmentation: every class also appears rotated by 90, 180 and 270 degrees, each
        rotation counting as a class of its own (4x the classes).
    augment
        Optional augmentation (e.g. :class:`core.imaging.augment.TensorAugment`), called as
        ``augment(x, rng)`` with the sampler's generator on the support and query batches.
    augment_per_class
        Call ``augment`` once per class instead (its support and query images together), so a batch-wide
        transform such as a quarter turn gives each class one look shared by its support and queries.
    partial_queries
        For evaluation on small classes: a class with fewer than K + Q images gives K support images and
        all the rest as queries (at least one); only classes with fewer than K + 1 images are skipped.
        Without it, classes with fewer than K + Q images are skipped.

    Raises
    ------
    DataError
        When fewer than ``n_way`` classes have enough images; the message names the skipped classes.
    """

    def __init__(
        self,
        dataset: ImageFolderDataset,
        n_way: int,
        k_shot: int,
        q_query: int,
        seed: int = 0,
        class_ids: Sequence[int] | None = None,
        *,
        rotations: bool = False,
        augment: Augment | None = None,
        augment_per_class: bool = False,
        partial_queries: bool = False,
    ) -> None:
        if n_way < 2 or k_shot < 1 or q_query < 1:
            raise ValueError(f"need n_way >= 2, k_shot >= 1, q_query >= 1; got {n_way}, {k_shot}, {q_query}")
        ids = list(range(len(dataset))) if class_ids is None else [int(i) for i in class_ids]
        bad = [i for i in ids if not 0 <= i < len(dataset)]
        if bad:
            raise ValueError(f"class ids {bad[:5]} out of range for a data set of {len(dataset)} classes")
        counts = dataset.counts
        need = k_shot + (1 if partial_queries else q_query)
        usable = [i for i in ids if counts[i] >= need]
        short = [i for i in ids if counts[i] < need]
        self.skipped_classes = tuple(dataset.class_names[i] for i in short)
        if short:
            log.info(
                "episode sampler: skipped %d of %d classes with fewer than %d images (%s)",
                len(short),
                len(ids),
                need,
                _describe(dataset, short),
            )
        rots = (0, 1, 2, 3) if rotations else (0,)
        self._pool = [(c, r) for c in usable for r in rots]
        if len(self._pool) < n_way:
            detail = f"; skipped for too few images: {_describe(dataset, short)}" if short else ""
            raise DataError(
                f"{n_way}-way {k_shot}-shot {q_query}-query episodes need {n_way} classes with at least "
                f"{need} images each, but only {len(self._pool)} of {len(ids)} qualify{detail}"
            )
        self.dataset = dataset
        self.n_way, self.k_shot, self.q_query = n_way, k_shot, q_query
        self.partial_queries = partial_queries
        self.augment = augment
        self.augment_per_class = augment_per_class
        self.rng = np.random.default_rng(seed)

    @property
    def num_classes(self) -> int:
        """Classes the sampler draws from (rotations counted as classes)."""
        return len(self._pool)

    def sample(self) -> Task:
        """One episode: support ``(N*K, C, H, W)`` with labels ``(N*K,)``; query ``(sum Q_i, C, H, W)``."""
        return self._episode(range(len(self._pool)), self.n_way, self.k_shot)

    def _episode(self, candidates: Sequence[int], n_way: int, k_shot: int) -> Task:
        """``n_way`` classes drawn uniformly from ``candidates`` (indices into the class pool), ``k_shot``
        support images and up to ``q_query`` queries each, labels in a fresh random order."""
        rng = self.rng
        chosen = rng.choice(len(candidates), size=n_way, replace=False)
        order = rng.permutation(n_way)  # episode label of the j-th chosen class
        support: list[torch.Tensor] = [torch.empty(0)] * n_way
        query: list[torch.Tensor] = [torch.empty(0)] * n_way
        for j, pick in enumerate(chosen):
            cid, rot = self._pool[int(candidates[int(pick)])]
            n = self.dataset.counts[cid]
            q = min(self.q_query, n - k_shot) if self.partial_queries else self.q_query
            idx = torch.from_numpy(rng.choice(n, size=k_shot + q, replace=False))
            imgs = self.dataset.images[cid][idx]
            if rot:
                imgs = torch.rot90(imgs, rot, dims=(2, 3))
            if self.augment is not None and self.augment_per_class:
                imgs = self.augment(imgs, rng)
            support[order[j]] = imgs[:k_shot]
            query[order[j]] = imgs[k_shot:]
        support_x = torch.cat(support).contiguous()
        query_x = torch.cat(query).contiguous()
        support_y = torch.arange(n_way).repeat_interleave(k_shot)
        query_y = torch.cat([torch.full((len(q),), i, dtype=torch.long) for i, q in enumerate(query)])
        if self.augment is not None and not self.augment_per_class:
            support_x = self.augment(support_x, rng)
            query_x = self.augment(query_x, rng)
        return Task(support_x, support_y, query_x, query_y)

    def sample_batch(self, size: int) -> list[Task]:
        """``size`` independent episodes (one meta-batch)."""
        return [self.sample() for _ in range(size)]

    def __iter__(self) -> Iterator[Task]:
        while True:
            yield self.sample()

    def get_state(self) -> dict[str, Any]:
        """The generator state (plain values), to resume sampling exactly."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state


def split_classes(
    dataset_or_count: ImageFolderDataset | int | Sequence[int],
    fractions: Sequence[float],
    seed: int = 0,
) -> list[list[int]]:
    """Split classes into disjoint groups (e.g. train/val/test) at random, reproducibly.

    Parameters
    ----------
    dataset_or_count
        A data set, a number of classes, or an explicit list of class ids to split.
    fractions
        Share of each group; they must sum to 1 (the last group takes any rounding remainder).
    seed
        Seed of the shuffle.

    Returns
    -------
    list[list[int]]
        One sorted list of class ids per fraction; every group is non-empty.
    """
    if isinstance(dataset_or_count, ImageFolderDataset):
        ids = list(range(len(dataset_or_count)))
    elif isinstance(dataset_or_count, int):
        ids = list(range(dataset_or_count))
    else:
        ids = [int(i) for i in dataset_or_count]
    if not fractions or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be positive and sum to 1, got {list(fractions)}")
    if len(ids) < len(fractions):
        raise DataError(f"cannot split {len(ids)} classes into {len(fractions)} non-empty groups")
    perm = np.random.default_rng(seed).permutation(ids)
    groups: list[list[int]] = []
    start = 0
    for k, frac in enumerate(fractions):
        remaining_groups = len(fractions) - k - 1
        if remaining_groups == 0:
            end = len(ids)
        else:
            end = min(max(start + 1, start + round(frac * len(ids))), len(ids) - remaining_groups)
        groups.append(sorted(int(i) for i in perm[start:end]))
        start = end
    return groups


def split_by_folder(dataset: ImageFolderDataset, *folders: str) -> list[list[int]]:
    """Class ids below each named sub-folder, e.g. ``split_by_folder(ds, "background", "evaluation")``."""
    groups = [dataset.class_ids_under(f) for f in folders]
    seen: set[int] = set()
    for f, g in zip(folders, groups, strict=True):
        if seen & set(g):
            raise DataError(f"sub-folder {f!r} overlaps another split")
        seen |= set(g)
    return groups


def _describe(dataset: ImageFolderDataset, ids: Sequence[int], limit: int = 5) -> str:
    parts = [f"{dataset.class_names[i]!r} ({dataset.counts[i]})" for i in ids[:limit]]
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(parts) + more
