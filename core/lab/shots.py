"""Shots versus accuracy: how many examples per class does this product need?

For each K: R times, draw K random images per class as the support set (seeded), adapt the base learner to
them with the app's adaptation, and score every other image. Learners on a frozen, batch-independent
embedding (the shipped ``finetune``) work on embeddings computed once for all images, with the very same
head fitting as ``adapt`` (as :mod:`core.training.evaluate` does); other learners adapt on the images.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from core.training.evaluate import mean_ci95


@dataclass(frozen=True)
class ShotsPoint:
    """Accuracy over ``repeats`` random splits with ``shots`` support images per class (mean, 95% CI)."""

    shots: int
    repeats: int
    accuracy: float
    ci95: float
    accuracies: tuple[float, ...]
    queries: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["accuracies"] = list(self.accuracies)
        return d


def usable_shots(shots: Sequence[int], counts: Sequence[int]) -> list[int]:
    """The K values that leave at least one query image in every class."""
    smallest = min(counts) if counts else 0
    return [k for k in sorted(set(shots)) if 1 <= k < smallest]


def iter_shots_curve(
    learner: nn.Module,
    labels: np.ndarray,
    shots: Sequence[int],
    repeats: int,
    *,
    views: torch.Tensor | None = None,
    images: torch.Tensor | None = None,
    steps: int | None = None,
    seed: int = 0,
) -> Iterator[tuple[int, int, ShotsPoint | None]]:
    """Yield ``(runs done, runs total, point or None)``; a point after its K's last repeat.

    Parameters
    ----------
    labels
        ``(n,)`` class index of every image, classes numbered ``0..m-1``, each present.
    views
        ``(V, n, D)`` view embeddings (from ``learner.embed_views``) for the embedded path, or
    images
        ``(n, C, S, S)`` prepared images for any other learner.
    steps
        Adaptation steps (the app's default when the caller passes it).
    """
    y = np.asarray(labels, np.int64)
    m = int(y.max()) + 1 if y.size else 0
    ks = usable_shots(shots, np.bincount(y, minlength=m).tolist())
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y == c) for c in range(m)]
    total, done = len(ks) * repeats, 0
    yt = torch.from_numpy(y)
    for k in ks:
        accs: list[float] = []
        n_query = 0
        for _ in range(repeats):
            perms = [rng.permutation(idx) for idx in by_class]
            sup = torch.from_numpy(np.concatenate([p[:k] for p in perms]))
            qry = torch.from_numpy(np.concatenate([p[k:] for p in perms]))
            if views is not None:
                head = learner.adapt_embedded(views[:, sup], yt[sup], steps=steps)  # type: ignore[operator]
                pred = head.logits(views[0, qry]).argmax(1).cpu()
            else:
                assert images is not None
                pred = learner.adapt(images[sup], yt[sup], steps=steps).predict(images[qry]).cpu()  # type: ignore[operator]
            accs.append(float((pred == yt[qry]).float().mean()))
            n_query = len(qry)
            done += 1
            yield done, total, None
        mean, ci = mean_ci95(accs)
        yield done, total, ShotsPoint(k, repeats, mean, ci, tuple(accs), n_query)
