"""Few-shot evaluation: N-way K-shot episodes from held-out classes, mean accuracy with a 95% CI.

The protocol of the MAML and ProtoNet papers: every episode adapts the learner to a fresh support set and
scores its query images; the result is the mean episode accuracy and the half-width ``1.96 * std / sqrt(n)``.
Classes with fewer than K + Q images still take part (K support images, the rest as queries); classes with
fewer than K + 1 images are skipped, and the sampler logs how many.

Learners on a frozen embedding (``embed_views`` + ``adapt_embedded``, e.g. ``finetune``) whose model embeds
each image independently of its batch (``model.batch_independent``) are evaluated on embeddings: every image
is embedded once (under the learner's support views) and every episode fits the head with the same code as
``adapt``; the sampler draws the same episodes either way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.config import EvalConfig
from core.data import EpisodeSampler, ImageFolderDataset
from core.training.progress import Cancellable, EvalProgress, EvalResult, is_cancelled


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 95% half-width ``1.96 * sd / sqrt(n)`` (sample sd, ``ddof=1``; 0 for a single value).

    The one confidence-interval formula of the project: evaluation, the baselines and the benchmarks use it.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no values to summarise")
    sd = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), 1.96 * sd / math.sqrt(arr.size)


def iter_evaluate(
    learner: nn.Module,
    dataset: ImageFolderDataset,
    config: EvalConfig,
    *,
    class_ids: Sequence[int] | None = None,
    cancel: Cancellable | None = None,
) -> Generator[EvalProgress, None, EvalResult]:
    """Evaluate episode by episode, yielding an :class:`EvalProgress` after each.

    Parameters
    ----------
    learner
        A ``MetaLearner``; each episode calls ``learner.adapt(support_x, support_y, steps=config.steps)``.
    dataset
        Prepared images; ``class_ids`` picks the held-out classes (default all).
    config
        Ways, shots, queries, episodes, seed and inner steps.
    cancel
        Stop early; the result then covers the episodes done (``cancelled=True``).

    Returns
    -------
    EvalResult
        Also attached to the last progress record as ``result``.
    """
    embedded = (
        callable(getattr(learner, "embed_views", None))
        and callable(getattr(learner, "adapt_embedded", None))
        and bool(getattr(getattr(learner, "model", None), "batch_independent", False))
    )
    if embedded:
        dataset = embedded_dataset(learner, dataset, class_ids)
    sampler = EpisodeSampler(
        dataset,  # type: ignore[arg-type]  (an EmbeddedDataset reads the same way)
        config.ways,
        config.shots,
        config.queries,
        config.seed,
        class_ids,
        partial_queries=True,
    )
    accs: list[float] = []
    t0 = time.perf_counter()
    cancelled = False
    for episode in range(1, config.episodes + 1):
        if is_cancelled(cancel):
            cancelled = True
            break
        task = sampler.sample()
        if embedded:
            # images were replaced by their embeddings (V, D, 1): fit the head as adapt() does
            support = task.support_x[..., 0].transpose(0, 1)  # (V, B, D)
            head = learner.adapt_embedded(support, task.support_y, steps=config.steps)  # type: ignore[operator]
            pred = head.logits(task.query_x[:, 0, :, 0]).argmax(1).cpu()
        else:
            adapted = learner.adapt(task.support_x, task.support_y, steps=config.steps)
            pred = adapted.predict(task.query_x).cpu()
        accs.append(float((pred == task.query_y).float().mean()))
        mean, ci = mean_ci95(accs)
        if episode < config.episodes:
            yield EvalProgress(episode, config.episodes, mean, ci, time.perf_counter() - t0)
    if not accs:
        mean, ci = float("nan"), float("nan")
    else:
        mean, ci = mean_ci95(accs)
    result = EvalResult(
        accuracy=mean,
        ci95=ci,
        episodes=len(accs),
        ways=config.ways,
        shots=config.shots,
        queries=config.queries,
        steps=config.steps,
        seed=config.seed,
        elapsed=time.perf_counter() - t0,
        skipped_classes=sampler.skipped_classes,
        cancelled=cancelled,
    )
    yield EvalProgress(len(accs), config.episodes, mean, ci, result.elapsed, result=result)
    return result


@dataclass(frozen=True)
class EmbeddedDataset:
    """A data set's images replaced by their view embeddings ``(n, V, D, 1)`` per class (what the sampler reads)."""

    class_names: list[str]
    images: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.class_names)

    @property
    def counts(self) -> list[int]:
        return [int(x.shape[0]) for x in self.images]


def embedded_dataset(
    learner: nn.Module, dataset: ImageFolderDataset, class_ids: Sequence[int] | None = None
) -> EmbeddedDataset:
    """Embed every image of the classes in ``class_ids`` (default all) once, under the learner's views.

    Classes left out keep their place (so class ids stay valid) with their counts but no embeddings computed:
    the sampler never draws them.
    """
    wanted = set(range(len(dataset))) if class_ids is None else {int(i) for i in class_ids}
    rows: list[torch.Tensor] = []
    for i, images in enumerate(dataset.images):
        if i in wanted:
            rows.append(learner.embed_views(images).permute(1, 0, 2).unsqueeze(-1).cpu())  # type: ignore[operator]
        else:
            rows.append(torch.empty(images.shape[0], 0))
    return EmbeddedDataset(list(dataset.class_names), rows)


def evaluate(
    learner: nn.Module,
    dataset: ImageFolderDataset,
    config: EvalConfig,
    *,
    class_ids: Sequence[int] | None = None,
    cancel: Cancellable | None = None,
) -> EvalResult:
    """Run :func:`iter_evaluate` to the end and return its :class:`EvalResult`."""
    result: EvalResult | None = None
    for record in iter_evaluate(learner, dataset, config, class_ids=class_ids, cancel=cancel):
        result = record.result or result
    assert result is not None  # iter_evaluate always ends with a result record
    return result
