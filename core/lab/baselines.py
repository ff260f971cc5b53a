"""Few-shot baselines that any meta-learned model must beat, scored on the very same episodes as the models.

Every classifier here is a plain function ``(support_x, support_y, query_x) -> predictions`` on the tensors of a
:class:`core.meta.Task` (``(B, C, S, S)`` images prepared by a :class:`Preprocess`), so a benchmark draws each
episode once and hands it to every contender:

- :func:`raw_pixel_ncm`: nearest class mean on the flattened pixels;
- :func:`texture_ncm`: nearest class mean on classic texture histograms (grey level, gradient orientation, LBP;
  ``core.lab.texture_features``) under the Hellinger distance;
- :func:`learner_classifier`: any :class:`MetaLearner` (e.g. a backbone with random weights, or the shipped
  model) adapted on the support set through its own ``adapt``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.imaging.preprocess import Preprocess
from core.lab.texture_features import TextureFeatureConfig, hellinger, texture_features_batch
from core.training.evaluate import mean_ci95

FewShotClassifier = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``(support_x (N*K, C, H, W), support_y (N*K,) in [0, N), query_x (Q, C, H, W)) -> predictions (Q,) long``."""


@dataclass(frozen=True)
class AccuracySummary:
    """Mean episode accuracy with its 95% confidence half-width (normal approximation, 1.96 * sd / sqrt(n))."""

    mean: float
    ci95: float
    episodes: int

    def __str__(self) -> str:
        return f"{100 * self.mean:5.1f} ± {100 * self.ci95:4.1f}"

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci95": self.ci95, "episodes": self.episodes}


def summarise(accuracies: Iterable[float]) -> AccuracySummary:
    """Per-episode accuracies -> :class:`AccuracySummary`."""
    acc = list(accuracies)
    if not acc:
        raise ValueError("no episode accuracies to summarise; the evaluation produced no episodes")
    mean, ci = mean_ci95(acc)
    return AccuracySummary(mean, ci, len(acc))


def _check_episode(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> int:
    if support_x.ndim != 4 or query_x.ndim != 4:
        raise ValueError(
            f"support_x and query_x must be (B, C, H, W) image batches, got {tuple(support_x.shape)} "
            f"and {tuple(query_x.shape)}"
        )
    if support_y.ndim != 1 or support_y.shape[0] != support_x.shape[0]:
        raise ValueError(f"support_y must be (N*K,) = ({support_x.shape[0]},), got {tuple(support_y.shape)}")
    if support_x.shape[1:] != query_x.shape[1:]:
        raise ValueError(
            f"support and query images differ in shape: {support_x.shape[1:]} vs {query_x.shape[1:]}"
        )
    n_way = int(support_y.max().item()) + 1 if support_y.numel() else 0
    present = torch.unique(support_y)
    if n_way < 2 or present.numel() != n_way:
        raise ValueError(f"support_y must hold every label 0..N-1 for N >= 2, got labels {present.tolist()}")
    return n_way


def nearest_class_mean(support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Negative squared Euclidean distances to class means: ``(N*K, D), (N*K,), (Q, D) -> logits (Q, N)``."""
    n_way = int(support_y.max().item()) + 1
    one_hot = torch.nn.functional.one_hot(support_y, n_way).to(support.dtype)  # (N*K, N)
    means = (one_hot.T @ support) / one_hot.sum(0, keepdim=True).T  # (N, D)
    return -torch.cdist(query, means).pow(2)


def raw_pixel_ncm(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
    """Nearest class mean on flattened pixels -> predictions ``(Q,)``."""
    _check_episode(support_x, support_y, query_x)
    logits = nearest_class_mean(support_x.flatten(1).double(), support_y, query_x.flatten(1).double())
    return logits.argmax(1)


def tensors_to_images(x: torch.Tensor, preprocess: Preprocess) -> list[np.ndarray]:
    """Undo a :class:`Preprocess` normalisation: ``(B, C, S, S)`` -> B uint8 images (grey or RGB order)."""
    mean = torch.tensor(preprocess.mean, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(preprocess.std, dtype=x.dtype).view(1, -1, 1, 1)
    unit = (x.detach().cpu() * std + mean).clamp(0.0, 1.0)
    arr = (unit * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if arr.shape[3] == 1:
        return [np.ascontiguousarray(a[:, :, 0]) for a in arr]
    # Preprocess yields RGB; the texture code expects OpenCV BGR for colour input.
    return [np.ascontiguousarray(a[:, :, ::-1]) for a in arr]


def texture_ncm(preprocess: Preprocess, config: TextureFeatureConfig | None = None) -> FewShotClassifier:
    """Nearest class mean on classic texture histograms (Hellinger distance), for tasks prepared by ``preprocess``.

    ``config`` defaults to the histograms of :class:`TextureFeatureConfig` at the preprocessed image size.
    """
    cfg = config or TextureFeatureConfig(size=preprocess.image_size)

    def classify(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        _check_episode(support_x, support_y, query_x)
        fs = hellinger(texture_features_batch(tensors_to_images(support_x, preprocess), cfg))
        fq = hellinger(texture_features_batch(tensors_to_images(query_x, preprocess), cfg))
        logits = nearest_class_mean(torch.from_numpy(fs).double(), support_y, torch.from_numpy(fq).double())
        return logits.argmax(1)

    return classify


def learner_classifier(learner: Any, steps: int | None = None) -> FewShotClassifier:
    """Wrap a :class:`core.meta.MetaLearner`: ``adapt`` on the support set, then ``predict`` the queries."""

    def classify(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        _check_episode(support_x, support_y, query_x)
        adapted = learner.adapt(support_x, support_y, steps=steps)
        with torch.no_grad():
            return adapted.predict(query_x)

    return classify


def episode_accuracy(classifier: FewShotClassifier, task: Any) -> float:
    """Accuracy of ``classifier`` on one task (anything with support_x, support_y, query_x, query_y)."""
    pred = classifier(task.support_x, task.support_y, task.query_x)
    if pred.shape != task.query_y.shape:
        raise ValueError(
            f"classifier returned predictions of shape {tuple(pred.shape)}, expected {tuple(task.query_y.shape)}"
        )
    return float((pred.cpu() == task.query_y.cpu()).double().mean().item())


def compare_on_episodes(
    classifiers: dict[str, FewShotClassifier], tasks: Iterable[Any]
) -> dict[str, AccuracySummary]:
    """Score every classifier on every task (each task drawn once, shared by all) -> summary per name."""
    scores: dict[str, list[float]] = {name: [] for name in classifiers}
    for task in tasks:
        for name, clf in classifiers.items():
            scores[name].append(episode_accuracy(clf, task))
    return {name: summarise(acc) for name, acc in scores.items()}
