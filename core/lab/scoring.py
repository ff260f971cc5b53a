"""Class probabilities for many prepared images: batched when the model allows it, embedded once for reports.

A model whose embedding does not depend on the rest of the batch (``model.batch_independent``: frozen
BatchNorm, instance norm) is run on whole batches; any other model one image at a time, as the live
classifier does (ADR 0001), so a part's verdict never depends on its neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from core.storage.checkpoint import LoadedCheckpoint

#: Images pushed through the network at once when embedding for reports (EfficientNet-Lite0 at 224 px: ~150 MB
#: of activations).
BATCH = 32

#: Pixels per forward pass of ``run``: 4 images at 224 px, 8 at 160 px. On the 2-core VM (bench/bench_run.py
#: --batch-sweep, docs/benchmarks.md) throughput peaks there and falls by half at 32 images, whose activations
#: leave the cache.
RUN_BATCH_PIXELS = 4 * 224 * 224


def run_batch(image_size: int) -> int:
    """Images per forward pass for ``run`` at this input size (1 to :data:`BATCH`)."""
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    return max(1, min(BATCH, round(RUN_BATCH_PIXELS / (image_size * image_size))))


def batch_independent(learner: nn.Module) -> bool:
    """True when the learner's model embeds each image independently of its batch."""
    return bool(getattr(getattr(learner, "model", None), "batch_independent", False))


def embeds_once(learner: nn.Module) -> bool:
    """True for learners on a frozen, batch-independent embedding (``embed_views`` + ``adapt_embedded``)."""
    return (
        callable(getattr(learner, "embed_views", None))
        and callable(getattr(learner, "adapt_embedded", None))
        and batch_independent(learner)
    )


class Scorer:
    """``probabilities(x)``: ``(B, C, S, S)`` prepared images -> ``(B, N)`` float32 on the CPU.

    Parameters
    ----------
    ck
        An adapted model (a checkpoint with a support set).
    channels_last
        Run convolutions on NHWC tensors: about 1.5x the images/s of NCHW for the shipped EfficientNet-Lite0 on
        CPU (bench/bench_run.py). Converts ``ck.learner`` in place (same values, another memory layout).
    """

    def __init__(self, ck: LoadedCheckpoint, *, channels_last: bool = True) -> None:
        self.class_names = list(ck.class_names)
        self.preprocess = ck.preprocess
        self.learner = ck.learner
        if channels_last:
            self.learner.to(memory_format=torch.channels_last)
        self.channels_last = channels_last
        self.classifier: Any = ck.adapted()
        self.batched = batch_independent(ck.learner)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.batched:
                return self.classifier.predict_proba(x).float().cpu()
            return (
                torch.cat([self.classifier.predict_proba(x[i : i + 1]) for i in range(len(x))]).float().cpu()
            )


@dataclass(frozen=True)
class Embedded:
    """View embeddings ``(V, n, D)`` of prepared images (view 0 = the images as given)."""

    views: torch.Tensor


def embed_in_batches(
    learner: nn.Module, x: torch.Tensor, *, all_views: bool, batch: int = BATCH
) -> Iterator[tuple[int, Embedded | None]]:
    """Embed ``x`` chunk by chunk, yielding ``(images done, None)`` and last ``(n, Embedded)``.

    ``all_views`` embeds every support view the learner fits on (needed to re-adapt on any of the images);
    otherwise view 0 only.
    """
    parts: list[torch.Tensor] = []
    embed: Callable[[torch.Tensor], torch.Tensor] = (
        learner.embed_views if all_views else (lambda c: learner.embed(c).unsqueeze(0))  # type: ignore[operator]
    )
    done = 0
    for chunk in x.split(batch):
        parts.append(embed(chunk).cpu())
        done += len(chunk)
        yield done, None
    views = torch.cat(parts, dim=1) if parts else torch.empty(1, 0, 0)
    yield done, Embedded(views)
