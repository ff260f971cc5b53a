"""The one training loop: an objective, an optimiser, callbacks; progress records as a generator.

Every trainer of the project is a thin use of :func:`run_engine`: meta-training on one data set
(:mod:`core.training.meta_train`), and the supervised and episodic stages of a training recipe
(:mod:`core.training.recipe_run`). An objective draws its batch and computes its loss
(:class:`~core.training.objectives.EpisodicObjective`: any learner's ``meta_loss`` on sampled tasks;
:class:`~core.training.objectives.SupervisedObjective`: cross-entropy over pooled classes); callbacks
validate, write checkpoints and stop early; a cancel token (or closing the generator) stops between steps.
All randomness of the data lives in the objective's seeded generator, whose state goes into
:meth:`EngineState.training_state`, so a resumed run continues exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from core.training.progress import Cancellable, TrainProgress, is_cancelled


class Objective(Protocol):
    """What the engine optimises: a batch drawn from seeded data, and its loss.

    ``loss`` returns the scalar loss (``backward()`` gives the gradients) and plain metrics with at least
    ``"loss"``, ``"accuracy"`` and ``"items"`` (tasks or images in the batch, for the throughput).
    """

    def draw(self) -> Any: ...

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]: ...

    def get_state(self) -> Any: ...

    def set_state(self, state: Any) -> None: ...


@dataclass
class EngineState:
    """What callbacks see and change while the engine runs.

    ``step`` is the last finished step; ``loss`` / ``accuracy`` are that step's values. A callback may set
    ``val_accuracy`` / ``val_scores`` (validation), ``checkpoint`` (the file it wrote) and ``stop`` (early
    stop: the current step becomes the last). ``saved_step`` is the step of the last checkpoint.
    """

    objective: Objective
    optimizer: torch.optim.Optimizer
    scheduler: Any
    step: int
    steps: int
    loss: float = math.nan
    accuracy: float = math.nan
    val_accuracy: float | None = None
    val_scores: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None
    saved_step: int = 0
    stop: bool = False
    cancelled: bool = False

    def training_state(self) -> dict[str, Any]:
        """What a checkpoint needs to resume: step, optimiser, sampler (and scheduler) state."""
        state: dict[str, Any] = {
            "iteration": self.step,
            "optimizer": self.optimizer.state_dict(),
            "sampler_state": self.objective.get_state(),
        }
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        return state


class Callback:
    """Hooks around the loop (override the ones needed). Run in the order given, on the reporting rank."""

    def after_step(self, state: EngineState) -> None:
        """After every optimiser step."""

    def on_end(self, state: EngineState) -> None:
        """Once, when the run ends: finished, stopped early, cancelled, or nothing left to do on a resume."""


class Validation(Callback):
    """Every ``every`` steps (and at the end of a finished run when ``at_end``), score the model.

    ``score()`` returns an accuracy, or accuracies by name (their mean becomes ``val_accuracy``).
    """

    def __init__(
        self, every: int, score: Callable[[], float | dict[str, float]], at_end: bool = False
    ) -> None:
        self.every, self.score, self.at_end = every, score, at_end

    def after_step(self, state: EngineState) -> None:
        last = state.step == state.steps
        if (self.every and state.step % self.every == 0) or (self.at_end and last):
            value = self.score()
            if isinstance(value, dict):
                state.val_scores = {k: float(v) for k, v in value.items()}
                state.val_accuracy = sum(state.val_scores.values()) / len(value) if value else None
            else:
                state.val_scores, state.val_accuracy = {}, float(value)


class Checkpoint(Callback):
    """Write ``save(state) -> path`` every ``every`` steps (0: never periodically), at the last step, and at
    the end of a stopped or cancelled run when there is unsaved work."""

    def __init__(self, every: int, save: Callable[[EngineState], str | None]) -> None:
        self.every, self.save = every, save

    def _write(self, state: EngineState) -> None:
        state.checkpoint = self.save(state)
        state.saved_step = state.step

    def after_step(self, state: EngineState) -> None:
        if state.step == state.steps or (self.every and state.step % self.every == 0):
            self._write(state)

    def on_end(self, state: EngineState) -> None:
        if state.step > state.saved_step:
            self._write(state)


class EarlyStop(Callback):
    """Stop when ``val_accuracy`` has not improved by ``min_delta`` for ``patience`` validations.

    Place it after the :class:`Validation` callback it watches and before :class:`Checkpoint`.
    """

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience}")
        self.patience, self.min_delta = patience, min_delta
        self.best = -math.inf
        self.bad = 0

    def after_step(self, state: EngineState) -> None:
        if state.val_accuracy is None:
            return
        if state.val_accuracy > self.best + self.min_delta:
            self.best, self.bad = state.val_accuracy, 0
        else:
            self.bad += 1
            state.stop = self.bad >= self.patience


def cosine_schedule(optimizer: torch.optim.Optimizer, steps: int, floor: float) -> Any:
    """Cosine decay of every rate from its start to ``floor`` times it over ``steps`` (1.0: constant)."""
    if floor >= 1.0:
        return None
    total = max(1, steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total))
    )


def run_engine(
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    *,
    steps: int,
    start: int = 0,
    scheduler: Any = None,
    callbacks: Sequence[Callback] = (),
    cancel: Cancellable | None = None,
    every: int = 1,
    report: bool = True,
    stage: str = "",
) -> Iterator[TrainProgress]:
    """Optimise ``objective`` from step ``start + 1`` to ``steps``; yield a record every ``every`` steps.

    Parameters
    ----------
    objective, optimizer, scheduler
        What to optimise, how (the optimiser owns the trainable parameters), and an optional learning-rate
        scheduler stepped after every optimiser step.
    steps, start
        The last step, and the steps already done (a resumed run).
    callbacks
        Validation, checkpoints, early stop... (see :class:`Callback`), in order.
    cancel
        Checked before every step; the last record then has ``cancelled=True`` and NaN loss.
    every
        Steps per record; ``meta_loss`` is the mean loss over them, ``accuracy`` the item-weighted mean.
    report
        ``False`` on the non-reporting ranks of a distributed run: they train silently.
    stage
        Copied into every record (``"supervised"``, ``"episodic"``, ...).

    Yields
    ------
    TrainProgress
        ``iteration`` = step; ``tasks_per_s`` = items (tasks or images) per second of optimisation time
        (loss, backward, optimiser; drawing the batch excluded) since ``start``; ``done`` on the last record.
    """
    state = EngineState(objective, optimizer, scheduler, start, steps, saved_step=start)
    t_start = time.perf_counter()
    busy, items = 0.0, 0.0
    window: list[tuple[float, float, float]] = []

    def record(**kw: Any) -> TrainProgress:
        kw.setdefault("tasks_per_s", items / busy if busy else 0.0)
        rec = TrainProgress(
            iteration=state.step, iterations=steps,
            val_accuracy=state.val_accuracy, elapsed=time.perf_counter() - t_start,
            checkpoint=state.checkpoint, val_scores=dict(state.val_scores), stage=stage, **kw,
        )  # fmt: skip
        state.val_accuracy, state.val_scores, state.checkpoint = None, {}, None
        return rec

    for step in range(start + 1, steps + 1):
        if is_cancelled(cancel):
            break
        batch = objective.draw()
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss, metrics = objective.loss(batch)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        busy += time.perf_counter() - t0
        n = float(metrics.get("items", 1.0))
        items += n
        state.step, state.loss, state.accuracy = step, float(metrics["loss"]), float(metrics["accuracy"])
        window.append((state.loss, state.accuracy, n))
        for cb in callbacks:
            cb.after_step(state)
        last = step == steps or state.stop
        if last:
            for cb in callbacks:
                cb.on_end(state)
        if report and (last or step % every == 0):
            weight = sum(w for _, _, w in window) or 1.0
            yield record(
                meta_loss=sum(v for v, _, _ in window) / len(window),
                accuracy=sum(a * w for _, a, w in window) / weight,
                done=last,
            )
            window = []
        if last:
            return
    # cancelled, or nothing left to do on a resume: keep the work and say so
    state.cancelled = is_cancelled(cancel)
    for cb in callbacks:
        cb.on_end(state)
    if report:
        yield record(
            meta_loss=math.nan, accuracy=math.nan, tasks_per_s=0.0, done=True, cancelled=state.cancelled
        )
