"""The live classifier: an adapted model plus its preprocessing, and the anomaly scorer taught from OK parts,
turning part crops into verdicts."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from core.imaging.preprocess import Preprocess
from core.inference.verdict import AnomalyScore, Decision, Verdict, VerdictPolicy, decide


class ProbabilityModel(Protocol):
    """Anything with ``predict_proba(x: (B, C, S, S)) -> (B, N)``, e.g. ``core.meta``'s AdaptedClassifier."""

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor: ...


class PartScorer(Protocol):
    """Anything with ``score(image) -> AnomalyScore``, e.g. :class:`core.inference.anomaly.AnomalyScorer`."""

    def score(self, image: np.ndarray) -> AnomalyScore: ...


_SIDE_POOL: ThreadPoolExecutor | None = None
_SIDE_LOCK = threading.Lock()


def _side_pool() -> ThreadPoolExecutor:
    """One long-lived thread (shared by every live classifier, so adaptations never add threads) that
    scores parts for anomalies while the calling thread classifies them."""
    global _SIDE_POOL
    with _SIDE_LOCK:
        if _SIDE_POOL is None:
            _SIDE_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anomaly-scorer")
        return _SIDE_POOL


def _scores(scorer: PartScorer, images: Sequence[np.ndarray]) -> list[AnomalyScore]:
    with torch.inference_mode():  # thread-local: set on the thread that scores
        return [scorer.score(im) for im in images]


class LiveClassifier:
    """Classify part crops with an adapted model.

    Parameters
    ----------
    model
        Adapted classifier whose ``predict_proba`` returns ``(B, N)`` probabilities over ``class_names``, or
        ``None`` when only OK parts are taught (then ``class_names`` is the OK class alone and ``anomaly``
        decides).
    preprocess
        The preprocessing the model was trained with (from its checkpoint).
    class_names
        Names of the N classes, in the model's output order.
    policy
        Confidence thresholds and which classes are defects.
    device
        Where the model lives; inputs are moved there.
    anomaly
        Anomaly scorer taught from the OK parts (each crop is scored at its own resolution), or ``None``.
    parallel
        Score anomalies on a second thread while this one classifies (default: when torch runs fewer threads
        than the machine has cores, as the app does on 2 cores): a verdict then waits for the slower of the
        two, not their sum. Both halves spend their time in torch kernels, which release the interpreter lock.
    """

    def __init__(
        self,
        model: ProbabilityModel | None,
        preprocess: Preprocess,
        class_names: Sequence[str],
        policy: VerdictPolicy | None = None,
        device: torch.device | str = "cpu",
        anomaly: PartScorer | None = None,
        parallel: bool | None = None,
    ) -> None:
        if model is None and (anomaly is None or len(class_names) != 1):
            raise ValueError(
                "without a classifier, give an anomaly scorer and the OK class name alone "
                f"(got classes {list(class_names)})"
            )
        if model is not None and len(class_names) < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {list(class_names)}")
        self.model = model
        self.anomaly = anomaly
        self.preprocess = preprocess
        self.class_names = tuple(class_names)
        self.policy = policy or VerdictPolicy()
        self.device = torch.device(device)
        if parallel is None:
            parallel = torch.get_num_threads() < (os.cpu_count() or 1)
        self.parallel = parallel and anomaly is not None and model is not None

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """OpenCV images -> ``(B, N)`` float64 probabilities."""
        if len(images) == 0:
            return np.zeros((0, len(self.class_names)))
        if self.model is None:  # OK examples only: the one class, decided by the anomaly score
            return np.ones((len(images), 1))
        x = self.preprocess.batch(images).to(self.device)
        with torch.inference_mode():
            # One image per forward pass: a model with per-batch BatchNorm statistics would otherwise give a
            # part a different verdict depending on which other parts arrived in the same frame (ADR 0001).
            probs = torch.cat([self.model.predict_proba(x[i : i + 1]) for i in range(len(x))])
        out = probs.detach().to("cpu", torch.float64).numpy()
        if out.shape != (len(images), len(self.class_names)):
            raise ValueError(
                f"model returned probabilities of shape {out.shape}, expected {(len(images), len(self.class_names))}"
            )
        return out

    def classify(self, part_ids: Sequence[int], images: Sequence[np.ndarray]) -> list[Verdict]:
        """One verdict per image, in order."""
        if len(part_ids) != len(images):
            raise ValueError(f"{len(part_ids)} part ids for {len(images)} images")
        scores: list[AnomalyScore | None] = [None] * len(images)
        side: Future[list[AnomalyScore]] | None = None
        if self.anomaly is not None and self.parallel and len(images):
            side = _side_pool().submit(_scores, self.anomaly, images)
        try:
            probs = self.probabilities(images)
        finally:
            if side is not None:
                scores = list(side.result())  # waits even when classifying failed: never two at once
        if self.anomaly is not None and side is None:
            scores = list(_scores(self.anomaly, images))
        return [
            decide(pid, row, self.class_names, self.policy, anomaly=a)
            for pid, row, a in zip(part_ids, probs, scores, strict=True)
        ]


@dataclass
class VerdictTally:
    """Running counts of decisions and classes for the live view (not thread-safe: one owner)."""

    decisions: Counter[Decision] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)

    def add(self, verdict: Verdict) -> None:
        self.decisions[verdict.decision] += 1
        self.classes[verdict.class_name] += 1

    @property
    def total(self) -> int:
        return sum(self.decisions.values())

    def reject_rate(self) -> float:
        return self.decisions[Decision.REJECT] / self.total if self.total else 0.0

    def reset(self) -> None:
        self.decisions.clear()
        self.classes.clear()
