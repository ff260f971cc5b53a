"""The MAML family: ``maml`` (second order), ``fomaml`` (first order), ``anil`` (head only), ``metasgd``.

Inner loop: ``steps`` plain SGD steps on the support cross-entropy starting from the shared weights,
``theta_{i+1} = theta_i - lr * grad L_support(theta_i)``. Outer loss: query cross-entropy at ``theta_k``.
Second order keeps the inner gradients in the graph (``create_graph=True``); first order treats them as
constants. Weights are a dict of tensors fed to ``torch.func.functional_call``: nothing is cloned per task.
Tasks are processed in a plain loop, not ``vmap``: see docs/adr/0001 for why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from core.meta.base import (
    DEFAULT_CHUNK,
    AdaptedClassifier,
    MetaLearner,
    StepCallback,
    Task,
    class_means,
    prepare_images,
    support_classes,
)
from core.meta.registry import register_learner

Params = dict[str, torch.Tensor]
LossFn = Callable[[Params], torch.Tensor]


def sgd_steps(
    loss_fn: LossFn,
    params: Params,
    steps: int,
    lrs: Mapping[str, float | torch.Tensor],
    *,
    create_graph: bool,
    detach: bool = False,
    on_step: StepCallback | None = None,
) -> Params:
    """Run ``steps`` SGD steps ``p <- p - lr[p] * dL/dp`` on a functional parameter dict.

    Parameters
    ----------
    loss_fn
        Maps a parameter dict to a scalar loss.
    params
        Starting tensors (all must require grad).
    lrs
        Step size per parameter name: a float or a tensor broadcastable to the parameter (Meta-SGD).
    create_graph
        Keep the gradient computation in the graph (second-order meta-gradients).
    detach
        Cut every step from the graph (deployment: adaptation only, no meta-gradient wanted).
    on_step
        Called after each step with ``(step, loss before the step)``; returning True stops early (cancel).

    Returns
    -------
    dict
        The adapted tensors, same keys.
    """
    names = list(params)
    for step in range(1, steps + 1):
        loss = loss_fn(params)
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph)
        if detach:
            with torch.no_grad():
                params = {
                    n: (params[n] - lrs[n] * g).requires_grad_() for n, g in zip(names, grads, strict=True)
                }
        else:
            params = {n: params[n] - lrs[n] * g for n, g in zip(names, grads, strict=True)}
        if on_step is not None and on_step(step, float(loss.detach())):
            break
    return params


def proto_head(
    features: torch.Tensor, labels: torch.Tensor, n_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear head equal to a nearest-class-mean classifier (Proto-MAML, Triantafillou et al. 2020).

    ``-|f - c|^2 = 2 c.f - |c|^2 - |f|^2`` and the last term is the same for every class, so
    ``weight = 2 c`` ``(N, D)`` and ``bias = -|c|^2`` ``(N,)``.
    """
    protos = class_means(features, labels, n_classes)
    return 2 * protos, -(protos * protos).sum(1)


class _GradientLearner(MetaLearner):
    """Shared machinery of the MAML family (subclasses choose what adapts and whether second order)."""

    head_only = False
    forced_first_order: bool | None = None

    def __init__(
        self,
        model: nn.Module,
        n_way: int = 5,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        first_order: bool = False,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> None:
        super().__init__(model, n_way)
        if not float(inner_lr) > 0:
            raise ValueError(f"inner_lr must be > 0, got {inner_lr}")
        if int(inner_steps) < 0:
            raise ValueError(f"inner_steps must be >= 0, got {inner_steps}")
        if self.forced_first_order is not None:
            first_order = self.forced_first_order
        self.inner_lr = float(inner_lr)
        self.inner_steps = int(inner_steps)
        self.first_order = bool(first_order)
        self.chunk_size = int(chunk_size)

    def hyper(self) -> dict[str, Any]:
        """Inner learning rate, inner steps, first/second order."""
        out: dict[str, Any] = {"inner_lr": self.inner_lr, "inner_steps": self.inner_steps}
        if self.forced_first_order is None:
            out["first_order"] = self.first_order
        return out

    # -- which tensors adapt, and how fast ------------------------------------------------------------------
    def _module(self) -> nn.Module:
        return self.model.head if self.head_only else self.model

    def _lrs(self, params: Params) -> dict[str, float | torch.Tensor]:
        return dict.fromkeys(params, self.inner_lr)

    # -- training -------------------------------------------------------------------------------------------
    def task_logits(self, task: Task) -> torch.Tensor:
        """Query logits ``(M, N)`` at the adapted weights; differentiable w.r.t. the shared weights.

        Under ``torch.no_grad()`` / ``inference_mode`` (validation) the inner loop still takes its gradient
        steps, and the result carries no graph.
        """
        if not torch.is_grad_enabled():
            with torch.inference_mode(False), torch.enable_grad():
                task = Task(*(t.clone() if t.is_inference() else t for t in _fields(task)))
                return self._task_logits(task, evaluate=True).detach()
        return self._task_logits(task, evaluate=False)

    def _task_logits(self, task: Task, evaluate: bool) -> torch.Tensor:
        module = self._module()
        params = dict(module.named_parameters())
        lrs = self._lrs(params)
        if evaluate:  # no meta-gradient wanted: plain detached SGD steps
            params = {k: v.detach().requires_grad_() for k, v in params.items()}
            lrs = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in lrs.items()}
        sx, qx, sy = task.support_x, task.query_x, task.support_y
        if self.head_only:
            # The body is frozen in the inner loop: embed support and query once and reuse them every step.
            with torch.set_grad_enabled(not evaluate):
                sx, qx = self.model.features(sx), self.model.features(qx)

        def support_loss(p: Params) -> torch.Tensor:
            return F.cross_entropy(functional_call(module, p, (sx,)), sy)

        adapted = sgd_steps(
            support_loss,
            params,
            self.inner_steps,
            lrs,
            create_graph=not (self.first_order or evaluate),
            detach=evaluate,
        )
        with torch.set_grad_enabled(not evaluate):
            return functional_call(module, adapted, (qx,))

    # -- deployment -----------------------------------------------------------------------------------------
    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        steps: int | None = None,
        on_step: StepCallback | None = None,
    ) -> AdaptedClassifier:
        """Fine-tune a functional copy of the weights on the support set; the shared model is untouched.

        Parameters
        ----------
        support_x, support_y
            ``(B, C, H, W)`` images and ``(B,)`` labels ``0..N-1`` (every class present, N >= 2).
        steps
            Inner SGD steps (default: ``inner_steps``).
        on_step
            Progress callback ``(step, support loss) -> stop?``; returning True ends adaptation early.

        Notes
        -----
        When N differs from the head's size, the head is first set from the support class means
        (Proto-MAML), then the usual steps run.
        """
        n = support_classes(support_x, support_y)
        steps = self.inner_steps if steps is None else int(steps)
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        x = prepare_images(self.model, support_x, "support")
        if x.is_inference():
            x = x.clone()
        y = support_y.to(x.device, torch.long)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(False), torch.enable_grad():
                return self._adapt(x, y, n, steps, on_step)
        finally:
            self.model.train(was_training)

    def _adapt(
        self, x: torch.Tensor, y: torch.Tensor, n: int, steps: int, on_step: StepCallback | None
    ) -> AdaptedClassifier:
        model = self.model
        head_params = {k: p.detach() for k, p in model.head.named_parameters()}
        if self.head_only:
            with torch.no_grad():
                feats = model.features(x)
        else:
            feats = None
        if n != model.head.out_features:
            if not isinstance(model.head, nn.Linear):
                raise ValueError(
                    f"adapting to {n} classes needs a linear head to re-initialise, got "
                    f"{type(model.head).__name__}; use {model.head.out_features} classes"
                )
            if feats is None:
                with torch.no_grad():
                    feats = model.features(x)
            weight, bias = proto_head(feats, y, n)
            head_params = {"weight": weight, "bias": bias}
        base = {k: v.detach() for k, v in self._module().named_parameters()}
        lrs = self._deploy_lrs(base, n)
        if self.head_only:
            params = {k: v.clone().requires_grad_() for k, v in head_params.items()}
            assert feats is not None

            def support_loss(p: Params) -> torch.Tensor:
                return F.cross_entropy(functional_call(model.head, p, (feats,)), y)

            adapted = sgd_steps(
                support_loss, params, steps, lrs, create_graph=False, detach=True, on_step=on_step
            )
            head = {k: v.detach() for k, v in adapted.items()}

            def logits_fn(q: torch.Tensor) -> torch.Tensor:
                return functional_call(model.head, head, (model.features(q),))

            return AdaptedClassifier(model, logits_fn, n, self.chunk_size)

        base.update({f"head.{k}": v for k, v in head_params.items()})
        params = {k: v.clone().requires_grad_() for k, v in base.items()}

        def full_loss(p: Params) -> torch.Tensor:
            return F.cross_entropy(functional_call(model, p, (x,)), y)

        adapted = sgd_steps(full_loss, params, steps, lrs, create_graph=False, detach=True, on_step=on_step)
        weights = {k: v.detach() for k, v in adapted.items()}

        def full_logits(q: torch.Tensor) -> torch.Tensor:
            return functional_call(model, weights, (q,))

        return AdaptedClassifier(model, full_logits, n, self.chunk_size)

    def _deploy_lrs(self, base: Params, n: int) -> dict[str, float | torch.Tensor]:
        del n
        return self._lrs(base)


@register_learner("maml")
class MAML(_GradientLearner):
    """Model-Agnostic Meta-Learning (Finn et al. 2017), second order unless ``first_order=True``.

    Hyper-parameters: ``inner_lr`` (0.4), ``inner_steps`` (1), ``first_order`` (False).
    """

    name = "maml"


@register_learner("fomaml")
class FOMAML(_GradientLearner):
    """First-order MAML: the inner gradients are constants, so ``d theta_k / d theta = I``."""

    name = "fomaml"
    forced_first_order = True


@register_learner("anil")
class ANIL(_GradientLearner):
    """Almost No Inner Loop (Raghu et al. 2020): only ``head`` adapts; features are computed once per task."""

    name = "anil"
    head_only = True


@register_learner("metasgd")
class MetaSGD(_GradientLearner):
    """Meta-SGD (Li et al. 2017): one learned inner learning rate per parameter element.

    The rates live in ``self.inner_lrs`` (an ``nn.ParameterDict``, initialised to ``inner_lr``), so they get
    meta-gradients, are optimised with the model and are saved in ``state_dict``.
    """

    name = "metasgd"

    def __init__(
        self,
        model: nn.Module,
        n_way: int = 5,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        first_order: bool = False,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> None:
        super().__init__(model, n_way, inner_lr, inner_steps, first_order, chunk_size)
        self.inner_lrs = nn.ParameterDict(
            {_key(n): nn.Parameter(torch.full_like(p, self.inner_lr)) for n, p in model.named_parameters()}
        )

    def _lrs(self, params: Params) -> dict[str, float | torch.Tensor]:
        return {n: self.inner_lrs[_key(n)] for n in params}

    def _deploy_lrs(self, base: Params, n: int) -> dict[str, float | torch.Tensor]:
        out: dict[str, float | torch.Tensor] = {}
        for name in base:
            lr = self.inner_lrs[_key(name)].detach()
            # A head re-initialised for another class count has another shape: use the mean learned rate.
            resized = name.startswith("head.") and n != self.model.head.out_features
            out[name] = lr.mean() if resized else lr
        return out


def _fields(task: Task) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return task.support_x, task.support_y, task.query_x, task.query_y


def _key(name: str) -> str:
    """ParameterDict keys cannot contain dots."""
    return name.replace(".", "__")
