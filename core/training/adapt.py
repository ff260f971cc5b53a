"""Few-shot adaptation of a loaded checkpoint to labelled images (what the app does when an inspector teaches).

:func:`adapt_examples` is a generator (progress records; its return value is the :class:`AdaptedModel`), so
the GUI can run it in a generator worker and the CLI can drive it with a plain loop.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.imaging.preprocess import Preprocess
from core.storage.checkpoint import LoadedCheckpoint, load_checkpoint, save_checkpoint
from core.training.progress import AdaptProgress, Cancellable, is_cancelled


@dataclass(frozen=True)
class AdaptedModel:
    """A learner adapted to one labelled support set, with the names of its classes.

    Attributes
    ----------
    classifier
        The learner's ``AdaptedClassifier`` (``predict_proba(x) -> (B, N)``).
    class_names
        Label ``i`` is ``class_names[i]``.
    preprocess
        How camera/file images become model inputs.
    learner
        The meta-trained learner it came from (unchanged).
    support_x, support_y
        The prepared support set ``(B, C, S, S)`` and labels ``(B,)``.
    steps
        Inner steps used (``None`` = the learner's default).
    """

    classifier: Any
    class_names: list[str]
    preprocess: Preprocess
    learner: nn.Module
    support_x: torch.Tensor
    support_y: torch.Tensor
    steps: int | None

    def predict_images(self, images: Sequence[np.ndarray]) -> tuple[list[str], torch.Tensor]:
        """OpenCV images -> (predicted class names, probabilities ``(B, N)``)."""
        probs = self.classifier.predict_proba(self.preprocess.batch(list(images))).cpu()
        return [self.class_names[int(i)] for i in probs.argmax(1)], probs

    def save(self, path: str | os.PathLike[str], provenance: dict[str, Any] | None = None) -> str:
        """Write the adapted classifier as a checkpoint (learner + support set); returns its SHA-256."""
        return save_checkpoint(
            path,
            self.learner,
            preprocess=self.preprocess,
            class_names=self.class_names,
            provenance=dict(provenance or {}),
            support=(self.support_x, self.support_y),
            adapt_steps=self.steps,
        )


def _support_loss(classifier: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    known = getattr(classifier, "support_logits", None)
    if known is not None:  # the learner scored its support set already
        return float(F.cross_entropy(known.detach().cpu().float(), y))
    probs = classifier.predict_proba(x).cpu().clamp_min(1e-12)
    return float(F.nll_loss(probs.log(), y))


def adapt_examples(
    checkpoint: LoadedCheckpoint | str | Path,
    examples: Sequence[tuple[np.ndarray, str]],
    *,
    steps: int | None = None,
    cancel: Cancellable | None = None,
) -> Generator[AdaptProgress, None, AdaptedModel | None]:
    """Adapt a meta-trained checkpoint to labelled OpenCV images.

    The inner steps run in a helper thread so each step's support loss can be yielded as it happens; the
    cancel token (or closing the generator) stops the steps early.

    Parameters
    ----------
    checkpoint
        A loaded checkpoint, a path, or ``"default"``.
    examples
        ``(image, label)`` pairs: OpenCV uint8 grey ``(H, W)`` or BGR ``(H, W, 3)`` and a class name.
        At least two classes; labels are numbered in sorted order.
    steps
        Inner steps (``None`` = the learner's default).
    cancel
        Stops adaptation between steps; the generator then returns ``None``.

    Yields
    ------
    AdaptProgress
        ``(0, None)`` when starting; ``(s, loss)`` with the support loss after ``s`` inner steps for learners
        that take gradient steps; last, ``(steps, loss)`` with the loss of the adapted classifier.
    """
    ck = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
    labels = sorted({str(label) for _, label in examples})
    if len(labels) < 2:
        raise ValueError(f"adaptation needs labelled images of at least two classes, got {labels or 'none'}")
    index = {name: i for i, name in enumerate(labels)}
    support_x = ck.preprocess.batch([img for img, _ in examples])
    support_y = torch.tensor([index[str(label)] for _, label in examples], dtype=torch.long)
    total = steps if steps is not None else int(getattr(ck.learner, "inner_steps", 0) or 0)
    t0 = time.perf_counter()
    yield AdaptProgress(0, total, None, 0.0)
    records: queue.Queue[AdaptProgress | None] = queue.Queue()
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def on_step(step: int, loss_before: float) -> bool:
        records.put(AdaptProgress(step - 1, total, loss_before, time.perf_counter() - t0))
        return stop.is_set() or is_cancelled(cancel)

    def work() -> None:
        try:
            outcome["classifier"] = ck.learner.adapt(support_x, support_y, steps=steps, on_step=on_step)
        except Exception as exc:  # re-raised in the caller's thread below
            outcome["error"] = exc
        finally:
            records.put(None)

    worker = threading.Thread(target=work, name="metainspect-adapt", daemon=True)
    worker.start()
    try:
        while (record := records.get()) is not None:
            yield record
    finally:
        stop.set()
        worker.join()
    if "error" in outcome:
        raise outcome["error"]
    if is_cancelled(cancel):
        return None
    classifier = outcome["classifier"]
    loss = _support_loss(classifier, support_x, support_y)
    yield AdaptProgress(total, total, loss, time.perf_counter() - t0)
    return AdaptedModel(classifier, labels, ck.preprocess, ck.learner, support_x, support_y, steps)


def warm_examples(checkpoint: LoadedCheckpoint, images: Sequence[np.ndarray]) -> None:
    """Do ahead of time what adapting on these labelled OpenCV images will need (call it when they are labelled).

    For the shipped model this embeds each image under the support views and keeps the result, so *Adapt*
    then only fits the head; learners without such work ignore it. Safe to call from a worker thread.
    """
    if images:
        checkpoint.learner.warm(checkpoint.preprocess.batch(list(images)))


class LabelWarmer:
    """Runs :func:`warm_examples` in one background thread, one labelled part after another.

    Failures are logged, never raised: adapting embeds whatever was not warmed, so nothing is lost.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metainspect-warm")

    def submit(self, checkpoint: LoadedCheckpoint, images: Sequence[np.ndarray]) -> Future[None]:
        """Queue the images' embedding; the future completes when it is done (or has failed, logged)."""
        return self._pool.submit(self._run, checkpoint, list(images))

    @staticmethod
    def _run(checkpoint: LoadedCheckpoint, images: list[np.ndarray]) -> None:
        try:
            warm_examples(checkpoint, images)
        except Exception:  # the embedding is only a head start: adapt computes it again if needed
            logging.getLogger(__name__).exception("embedding a labelled part ahead of adaptation failed")

    def wait(self, timeout: float | None = None) -> None:
        """Block until everything submitted so far has been done."""
        self._pool.submit(lambda: None).result(timeout)

    def close(self, wait: bool = True) -> None:
        """Stop taking work; drop what has not started (``wait`` lets the running one finish)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)


def run_adaptation(
    checkpoint: LoadedCheckpoint | str | Path,
    examples: Sequence[tuple[np.ndarray, str]],
    *,
    steps: int | None = None,
) -> AdaptedModel:
    """Drive :func:`adapt_examples` to the end and return its result."""
    gen = adapt_examples(checkpoint, examples, steps=steps)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            result = stop.value
            break
    if result is None:  # only happens when cancelled, which run_adaptation never asks for
        raise RuntimeError("adaptation stopped without a result")
    return result
