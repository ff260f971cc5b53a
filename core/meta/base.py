"""Shared pieces of every meta-learner: the ``Task`` record, input checks, ``MetaLearner``, ``AdaptedClassifier``.

Every learner works on functional parameters (``torch.func.functional_call`` with a dict of tensors), so a
task's adapted weights are plain tensors and the model itself is never copied.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_CHUNK = 256


@dataclass(frozen=True)
class Task:
    """One N-way K-shot episode.

    Attributes
    ----------
    support_x
        ``(N*K, C, H, W)`` float images.
    support_y
        ``(N*K,)`` long labels in ``[0, N)``, every class present.
    query_x
        ``(M, C, H, W)`` float images.
    query_y
        ``(M,)`` long labels in ``[0, N)``.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    def __post_init__(self) -> None:
        check_labelled(self.support_x, self.support_y, "support")
        check_labelled(self.query_x, self.query_y, "query")
        if self.support_x.shape[1:] != self.query_x.shape[1:]:
            raise ValueError(
                f"support images {tuple(self.support_x.shape[1:])} and query images "
                f"{tuple(self.query_x.shape[1:])} must have the same (C, H, W)"
            )

    @property
    def n_way(self) -> int:
        """Number of classes N (labels are ``0..N-1``)."""
        return int(self.support_y.max()) + 1


def check_labelled(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(B, C, H, W)`` and ``y`` is ``(B,)`` integer labels >= 0, B >= 1."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ValueError(f"{what} images and labels must be torch tensors")
    if x.dim() != 4:
        raise ValueError(f"{what} images must have shape (B, C, H, W), got {tuple(x.shape)}")
    if y.dim() != 1:
        raise ValueError(f"{what} labels must have shape (B,), got {tuple(y.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"the {what} set is empty: give at least one labelled image per class")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{what} has {x.shape[0]} images but {y.shape[0]} labels")
    if y.dtype in (torch.bool,) or y.dtype.is_floating_point or y.dtype.is_complex:
        raise ValueError(f"{what} labels must be integer class indices (torch.long), got {y.dtype}")
    if int(y.min()) < 0:
        raise ValueError(f"{what} labels must be class indices >= 0, got {int(y.min())}")


def support_classes(x: torch.Tensor, y: torch.Tensor) -> int:
    """Check a support set and return its number of classes N (labels ``0..N-1``, each present, N >= 2).

    Raises
    ------
    ValueError
        Wrong shapes, empty support, fewer than two classes, or a class index with no example.
    """
    check_labelled(x, y, "support")
    counts = torch.bincount(y.detach().to("cpu", torch.long))
    n = int(counts.numel())
    missing = [int(c) for c in torch.nonzero(counts == 0).flatten()]
    if missing:
        raise ValueError(
            f"support labels must cover every class 0..{n - 1}, but class(es) {missing} have no example; "
            "label at least one image of every class (or renumber the classes)"
        )
    if n < 2:
        raise ValueError("the support set has a single class; a classifier needs at least two classes")
    return n


def loo_indices(labels: torch.Tensor) -> list[int]:
    """Indices of the labels ``(B,)`` that leave-one-out can judge: those whose class has another example."""
    counts = torch.bincount(labels.detach().to("cpu", torch.long))
    return [i for i, y in enumerate(labels.tolist()) if counts[int(y)] > 1]


def class_means(features: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Per-class mean of ``features`` ``(B, D)`` for labels ``(B,)`` -> ``(n_classes, D)``."""
    one_hot = F.one_hot(labels, n_classes).to(features.dtype)  # (B, N)
    return (one_hot.t() @ features) / one_hot.sum(0).unsqueeze(1)


def prototype_logits(features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Negative squared Euclidean distances ``(B, N)`` from ``features`` ``(B, D)`` to ``prototypes`` ``(N, D)``."""
    # Expanded form (|f|^2 - 2 f.c + |c|^2) is a single matmul; clamp keeps round-off from going negative.
    sq = (features * features).sum(1, keepdim=True) - 2 * features @ prototypes.t()
    sq = sq + (prototypes * prototypes).sum(1).unsqueeze(0)
    return -sq.clamp_min(0)


StepCallback = Callable[[int, float], bool | None]
"""Adaptation progress: called with ``(step, support loss)`` after each inner step; True asks to stop."""


class AdaptedClassifier:
    """A model adapted to one support set: ``predict_proba`` / ``predict`` for new images.

    Holds only the adapted tensors and a reference to the (unchanged) shared model.

    Parameters
    ----------
    model
        The learner's model (``features`` + ``head``); used, never modified.
    logits_fn
        ``(B, C, H, W) -> (B, N)`` logits built by the learner from the adapted tensors.
    n_classes
        N.
    chunk_size
        Largest batch pushed through the network at once (bounds memory for big query sets).
    """

    def __init__(
        self,
        model: nn.Module,
        logits_fn: Callable[[torch.Tensor], torch.Tensor],
        n_classes: int,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> None:
        self.model = model
        self._logits_fn = logits_fn
        self.n_classes = n_classes
        self.chunk_size = max(1, int(chunk_size))
        #: logits ``(B, N)`` of the support set, when the learner has them already (else ``None``)
        self.support_logits: torch.Tensor | None = None

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, N)`` for images ``x`` ``(B, C, H, W)``, computed in chunks without autograd."""
        return eval_chunks(self.model, self._logits_fn, x, self.chunk_size, "query")

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, N)`` (rows sum to 1) for images ``x`` ``(B, C, H, W)``."""
        return self.logits(x).softmax(dim=1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Most likely class ``(B,)`` long for images ``x`` ``(B, C, H, W)``."""
        return self.logits(x).argmax(dim=1)


def eval_chunks(
    model: nn.Module,
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    chunk_size: int,
    what: str,
) -> torch.Tensor:
    """``fn`` over ``x`` in chunks of ``chunk_size``, with ``model`` in eval mode and no autograd.

    ``x`` is checked against the model and moved to its device first (``what`` names it in errors); a model
    in training mode is put in eval mode and back afterwards. One already in eval mode is left alone: switching
    the shipped model's ~270 modules twice cost about 1 ms of each single-part verdict.
    """
    x = prepare_images(model, x, what)
    was_training = model.training
    if was_training:
        model.eval()
    try:
        with torch.inference_mode():
            return torch.cat([fn(chunk) for chunk in x.split(chunk_size)])
    finally:
        if was_training:
            model.train(True)


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's first parameter (CPU float32 for a parameterless model)."""
    for p in model.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def prepare_images(model: nn.Module, x: torch.Tensor, what: str) -> torch.Tensor:
    """Check ``x`` against the model and move it to the model's device and dtype."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what} images must be a (B, C, H, W) tensor, got {shape}")
    if x.shape[0] == 0:
        raise ValueError(f"no {what} images given")
    check = getattr(model, "check_input", None)
    if callable(check):
        check(x)
    device, dtype = model_device_dtype(model)
    return x.to(device=device, dtype=dtype)


class _PrecomputedGradient(torch.autograd.Function):
    """Identity on a (detached) loss value whose backward hands precomputed gradients to ``params``."""

    @staticmethod
    def forward(ctx: Any, value: torch.Tensor, grads: list, *params: torch.Tensor) -> torch.Tensor:
        ctx.grads = grads
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple:
        scaled = tuple(None if g is None else g * grad_output for g in ctx.grads)
        return (None, None, *scaled)


class MetaLearner(nn.Module):
    """Base of every meta-learner: an ``nn.Module`` holding ``model`` (and any learned extras).

    Subclasses implement :meth:`task_logits` (query logits after adapting to the support set, differentiable
    w.r.t. ``self.parameters()``) and :meth:`adapt`.

    Parameters
    ----------
    model
        ``nn.Module`` with ``features`` ``(B, C, H, W) -> (B, D)`` and ``head`` ``(B, D) -> (B, n_way)``.
    n_way
        Classes per training task.
    """

    name: str = ""

    def __init__(self, model: nn.Module, n_way: int = 5) -> None:
        super().__init__()
        if not (hasattr(model, "features") and hasattr(model, "head")):
            raise ValueError(
                f"the model must have 'features' and 'head' sub-modules (forward = head(features(x))); "
                f"got {type(model).__name__}"
            )
        if int(n_way) < 2:
            raise ValueError(f"n_way must be at least 2, got {n_way}")
        self.model = model
        self.n_way = int(n_way)

    # -- training -------------------------------------------------------------------------------------------
    def task_logits(self, task: Task) -> torch.Tensor:
        """Query logits ``(M, N)`` after adapting to ``task``'s support set (keeps the meta-graph)."""
        raise NotImplementedError

    def meta_loss(self, tasks: Sequence[Task]) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean over ``tasks`` of the query cross-entropy after adaptation.

        Returns
        -------
        loss
            Scalar tensor; ``loss.backward()`` puts the meta-gradient on ``self.parameters()``.
        metrics
            ``{"loss": float, "accuracy": float}`` (mean query accuracy over the tasks).

        Notes
        -----
        With grad mode on and ``task_by_task`` set (the default), each task's meta-gradient is computed as
        soon as its loss is known and its graph is freed, so peak memory is one task's graph, not the whole
        meta-batch's; the returned loss carries the summed gradient and hands it to ``backward()``.
        Under ``torch.no_grad()`` nothing is differentiated (the inner loop still runs).
        """
        if len(tasks) == 0:
            raise ValueError("meta_loss needs at least one task")
        device, dtype = model_device_dtype(self.model)
        params = [p for p in self.parameters() if p.requires_grad]
        eager = self.task_by_task and len(tasks) > 1 and bool(params) and torch.is_grad_enabled()
        grads: list[torch.Tensor | None] = [None] * len(params)
        losses = []
        correct = 0
        total = 0
        for task in tasks:
            task = self._to_model(task, device, dtype)
            logits = self.task_logits(task)
            qy = task.query_y.to(device)
            loss = F.cross_entropy(logits, qy)
            if eager and loss.requires_grad:
                task_grads = torch.autograd.grad(loss / len(tasks), params, allow_unused=True)
                for i, g in enumerate(task_grads):
                    if g is not None:
                        grads[i] = g if grads[i] is None else grads[i] + g
                loss = loss.detach()
            losses.append(loss)
            correct += int((logits.detach().argmax(1) == qy).sum())
            total += int(qy.numel())
        loss = torch.stack(losses).mean()
        if eager:
            loss = _PrecomputedGradient.apply(loss, grads, *params)
        return loss, {"loss": float(loss.detach()), "accuracy": correct / total}

    def forward(self, tasks: Sequence[Task]) -> tuple[torch.Tensor, dict[str, float]]:
        """Same as :meth:`meta_loss`, so a ``DistributedDataParallel`` wrapper can drive the learner."""
        return self.meta_loss(tasks)

    def _to_model(self, task: Task, device: torch.device, dtype: torch.dtype) -> Task:
        n = task.n_way
        if n != self.n_way and not self.any_way_training:
            raise ValueError(
                f"{self.name} was built for {self.n_way}-way tasks but got a {n}-way task; sample "
                f"{self.n_way}-way episodes or create the learner with n_way={n}"
            )
        qn = int(task.query_y.max()) + 1
        if qn > n:
            raise ValueError(f"query labels go up to {qn - 1} but the support set has only {n} classes")
        check = getattr(self.model, "check_input", None)
        if callable(check):
            check(task.support_x)
        sx = task.support_x.to(device=device, dtype=dtype)
        unchanged = sx is task.support_x and task.query_x.device == device and task.query_x.dtype == dtype
        if unchanged and task.support_y.device == device and task.query_y.device == device:
            return task
        return Task(
            sx,
            task.support_y.to(device),
            task.query_x.to(device=device, dtype=dtype),
            task.query_y.to(device),
        )

    any_way_training: bool = False
    """True for learners (ProtoNet) that train on tasks with any number of classes."""

    task_by_task: bool = True
    """Differentiate each task as soon as its loss is known (bounded memory); see :meth:`meta_loss`."""

    # -- deployment -----------------------------------------------------------------------------------------
    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        steps: int | None = None,
        on_step: StepCallback | None = None,
    ) -> AdaptedClassifier:
        """Adapt to a labelled support set ``(B, C, H, W)``, ``(B,)`` with labels ``0..N-1`` (N >= 2).

        ``on_step(step, loss) -> stop?`` reports each inner step of learners that take gradient steps
        (and lets the caller stop early); learners without steps never call it.
        """
        raise NotImplementedError

    def leave_one_out(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        steps: int | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> torch.Tensor | None:
        """Judge each support image by a classifier adapted without it.

        Parameters
        ----------
        support_x, support_y
            The support set ``(B, C, H, W)``, ``(B,)`` with labels ``0..N-1`` (as for :meth:`adapt`).
        steps
            Inner steps of each adaptation (as for :meth:`adapt`).
        stop
            Asked before each adaptation; True stops and returns ``None``.

        Returns
        -------
        torch.Tensor or None
            ``(B, N)`` probabilities on the CPU; row ``i`` comes from the classifier adapted to the other
            ``B - 1`` images. The row of an image that is the only one of its class is NaN (without it the
            class is unknown, so it cannot be judged). ``None`` when stopped.
        """
        n = support_classes(support_x, support_y)
        out = torch.full((len(support_y), n), math.nan)
        for i in loo_indices(support_y):
            if stop is not None and stop():
                return None
            keep = torch.arange(len(support_y)) != i
            classifier = self.adapt(support_x[keep], support_y[keep], steps=steps)
            out[i] = classifier.predict_proba(support_x[i : i + 1])[0].detach().to("cpu", out.dtype)
        return out

    def warm(self, x: torch.Tensor) -> None:
        """Prepare for an :meth:`adapt` that will include support images ``x`` (called when a part is labelled).

        Learners whose adaptation starts from a fixed embedding compute and keep it here, so adapting later
        costs only the fitting; the default does nothing.
        """
        del x

    def hyper(self) -> dict[str, Any]:
        """Learner-specific hyper-parameters (JSON-able) for :meth:`config`."""
        return {}

    def config(self) -> dict[str, Any]:
        """JSON-able ``{"name", "n_way", hyper...}``; ``create_learner(**config, model=m)`` rebuilds it."""
        return {"name": self.name, "n_way": self.n_way, **self.hyper()}
