"""Frozen progress records yielded by the training, evaluation and adaptation generators, and the cancel token."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol


class Cancellable(Protocol):
    """Anything with ``is_set()`` (a :class:`CancelToken` or a ``threading.Event``)."""

    def is_set(self) -> bool: ...


class CancelToken:
    """Thread-safe flag a GUI or CLI sets to stop a running generator between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop at its next check."""
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


def is_cancelled(token: Cancellable | None) -> bool:
    """True when a token was given and has been set."""
    return token is not None and token.is_set()


@dataclass(frozen=True)
class TrainProgress:
    """One meta-training iteration.

    ``meta_loss`` / ``accuracy`` are this iteration's meta-batch values (NaN on a cancelled final record);
    ``tasks_per_s`` is tasks per second of optimisation time (forward, backward, Adam; sampling excluded),
    averaged since the run (or resume) started; ``val_accuracy`` is set only on validation iterations;
    ``elapsed`` is wall seconds since the start; ``checkpoint`` is the file written at this iteration, if
    any; ``done`` marks the last record (finished or cancelled); ``val_scores`` holds validation accuracies
    by held-out set when there are several (``val_accuracy`` is then their mean); ``stage`` names the part of
    a multi-stage run (``"supervised"``, ``"episodic"``; empty for plain meta-training).
    """

    iteration: int
    iterations: int
    meta_loss: float
    accuracy: float
    tasks_per_s: float
    val_accuracy: float | None
    elapsed: float
    checkpoint: str | None = None
    done: bool = False
    cancelled: bool = False
    val_scores: dict[str, float] = field(default_factory=dict)
    stage: str = ""


@dataclass(frozen=True)
class EvalResult:
    """Mean episode accuracy (0..1) with the 95% confidence half-width ``1.96 * std / sqrt(n)``."""

    accuracy: float
    ci95: float
    episodes: int
    ways: int
    shots: int
    queries: int
    steps: int | None
    seed: int
    elapsed: float
    skipped_classes: tuple[str, ...] = ()
    cancelled: bool = False

    def to_dict(self) -> dict[str, object]:
        """JSON-able form (what ``metainspect-lab evaluate --json`` prints)."""
        return {
            "accuracy": self.accuracy,
            "ci95": self.ci95,
            "episodes": self.episodes,
            "ways": self.ways,
            "shots": self.shots,
            "queries": self.queries,
            "steps": self.steps,
            "seed": self.seed,
            "elapsed_s": round(self.elapsed, 3),
            "skipped_classes": len(self.skipped_classes),
            "cancelled": self.cancelled,
        }


@dataclass(frozen=True)
class EvalProgress:
    """After each evaluation episode: running mean accuracy and CI; ``result`` is set on the last record."""

    episode: int
    episodes: int
    accuracy: float
    ci95: float
    elapsed: float
    result: EvalResult | None = None


@dataclass(frozen=True)
class AdaptProgress:
    """Few-shot adaptation progress: ``loss`` is the support cross-entropy (``None`` before it is known)."""

    step: int
    steps: int
    loss: float | None
    elapsed: float
