"""Class-balanced episodes from a pool of classes gathered from several sources.

A training pool mixes image-folder sets and synthetic product variants; class names are ``"<source>/<class>"``
(``"synthetic/<variant>/<defect>"`` for the synthetic line). :class:`PooledEpisodeSampler` draws every
episode from one source group at a time (as at deployment: one product's defects, seen on one line; mixed-
source episodes are solved by telling sources apart, which teaches nothing about defects), with a random
number of ways and shots per episode, and every class of a group equally likely whatever its image count.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.data.episodes import Augment, EpisodeSampler
from core.data.folder import ImageFolderDataset
from core.meta import Task


def source_groups(class_names: Sequence[str], min_size: int = 2) -> dict[str, list[int]]:
    """Class ids grouped by source: ``"<set>/<class>"`` -> ``"<set>"``; groups under ``min_size`` dropped.

    ``"synthetic/<variant>/<defect>"`` groups as ``"synthetic/<variant>"`` (everything before the last
    ``/``); a name without ``/`` is its own source.
    """
    groups: dict[str, list[int]] = {}
    for cid, name in sorted(enumerate(class_names), key=lambda item: item[1]):
        groups.setdefault(name.rsplit("/", 1)[0], []).append(cid)
    return {k: v for k, v in sorted(groups.items()) if len(v) >= min_size}


class PooledEpisodeSampler(EpisodeSampler):
    """Episodes of a varying size from a pool of classes, one source group per episode.

    Each episode picks a group uniformly, then its ways (``ways``, or uniformly 2..``max_ways`` capped by
    the group's size) and its shots (uniformly from ``shots``), then classes uniformly within the group
    (class-balanced: a class with many images is no likelier than one with few), then images uniformly
    within each class. A class with fewer than K + Q images gives K support images and the rest as queries.

    Parameters
    ----------
    dataset
        The pool (class names ``"<source>/<class>"``; see :func:`source_groups`).
    shots
        Support sizes to choose from per episode.
    queries
        Query images per class (fewer for small classes).
    seed
        Seed of the sampler's generator (its state is saved and restored as the base class's).
    ways, max_ways
        Fixed ways (learners with a fixed-size head: groups with fewer usable classes are left out), or
        ``None`` for 2..``max_ways``.
    groups
        Class ids of each group; default :func:`source_groups` of the class names (``within_source``), or
        one group of every class when ``within_source`` is false.
    augment
        Called once per class (its support and queries together) as ``augment(x, rng)``.

    Raises
    ------
    ValueError
        When no group has enough classes with more than ``max(shots)`` images.
    """

    def __init__(
        self,
        dataset: ImageFolderDataset,
        shots: Sequence[int],
        queries: int,
        seed: int = 0,
        *,
        ways: int | None = None,
        max_ways: int = 6,
        groups: Sequence[Sequence[int]] | None = None,
        within_source: bool = True,
        augment: Augment | None = None,
    ) -> None:
        if not shots or min(shots) < 1:
            raise ValueError(f"shots must be a non-empty list of positive sizes, got {list(shots)}")
        need_ways = ways or 2
        if groups is None:
            ids = list(range(len(dataset)))
            groups = list(source_groups(dataset.class_names).values()) if within_source else [ids]
        super().__init__(
            dataset, need_ways, max(shots), queries, seed, sorted({c for g in groups for c in g}),
            augment=augment, augment_per_class=True, partial_queries=True,
        )  # fmt: skip
        index = {cid: i for i, (cid, _) in enumerate(self._pool)}
        usable = [[index[c] for c in g if c in index] for g in groups]
        self.groups = [g for g in usable if len(g) >= need_ways]
        if not self.groups:
            raise ValueError(
                f"no data set (or synthetic variant) gives at least {need_ways} classes with more than "
                f"{max(shots)} images each"
            )
        self.shots = tuple(int(k) for k in shots)
        self.ways = ways
        self.max_ways = max_ways

    def sample(self) -> Task:
        """One episode from one group (see the class description)."""
        rng = self.rng
        group = self.groups[int(rng.integers(len(self.groups)))]
        n_way = self.ways or int(rng.integers(2, min(self.max_ways, len(group)) + 1))
        k_shot = int(rng.choice(self.shots))
        return self._episode(group, n_way, k_shot)
