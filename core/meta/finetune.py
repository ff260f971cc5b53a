"""Fine-tuned cosine head on a frozen embedding: the adaptation step of the pretrained pipeline.

``adapt`` is the MAML family's inner loop restricted to the head (as ANIL) and started from the class
prototypes (Proto-MAML, Triantafillou et al., ICLR 2020): embed the support images under a few
label-preserving views (flips, quarter turns), set a cosine classifier's weights to the class means, then take
first-order Adam steps on the head's weights, biases and temperature with the cross-entropy of every view,
stopping early once the support loss stops falling. ``inner_steps=0`` is the prototype-only classifier
(ProtoNet with cosine similarity): the fast choice.

Because the embedding is frozen, adaptation and evaluation work on embeddings: :meth:`FineTuneHead.embed_views`
then :func:`fit_head`. The evaluation loop uses that to embed each image once for all its episodes, with the
very same fitting code the app runs. The app embeds each example when it is labelled (:meth:`FineTuneHead.warm`,
kept in an :class:`~core.meta.embedding_cache.EmbeddingCache`), so *Adapt* itself only fits the head.

An embedding may have optional dimensions (the model's ``optional_features``: EfficientNet's covariance
groups, which help real surfaces and hurt a small mark on a large part). Each task decides with its own
support set (:func:`use_optional`): they are kept when the leave-one-out nearest-prototype accuracy (then
loss) is better with them, and left out when it is not; when a class has a single example, they are kept when
the classes are clearly less alike in them than in the other dimensions (:func:`similarity_gap`). A fused
model's parts may be re-weighted per task the same way (``part_weights``: the leave-one-out picks among the
model's own weights and the learner's alternatives; a part trained on the synthetic line counts more on a
part-like task than on a real texture).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.imaging.augment import TENSOR_VIEWS, tensor_views
from core.meta.base import (
    AdaptedClassifier,
    MetaLearner,
    StepCallback,
    Task,
    class_means,
    eval_chunks,
    loo_indices,
    support_classes,
)
from core.meta.embedding_cache import EmbeddingCache, tensor_digest
from core.meta.registry import register_learner


@dataclass(frozen=True)
class CosineHead:
    """``logits = scale * cos(f, weight_k) + bias_k`` for embeddings ``f`` ``(B, D)``; weight ``(N, D)``."""

    weight: torch.Tensor
    bias: torch.Tensor
    scale: float
    #: ``(D,)`` multiplier applied to embeddings first (0: optional dimensions left out; other values: the
    #: parts' weights the task chose), or None: the embedding as it is
    mask: torch.Tensor | None = None

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, N)`` for embeddings ``(B, D)``."""
        if self.mask is not None:
            features = features * self.mask
        w = F.normalize(self.weight, dim=1)
        return self.scale * F.normalize(features, dim=1) @ w.t() + self.bias


def loo_prototype_score(
    view_features: torch.Tensor, labels: torch.Tensor, scale: float
) -> tuple[float, float]:
    """Leave-one-out nearest-prototype (cosine) accuracy and cross-entropy of support embeddings ``(V, B, D)``
    (views averaged); every class needs two examples."""
    f = F.normalize(view_features.mean(0), dim=1)
    one_hot = F.one_hot(labels, int(labels.max()) + 1).to(f.dtype)  # (B, N)
    sums, counts = one_hot.t() @ f, one_hot.sum(0)
    # each example's class mean without it; the other classes' means whole
    protos = (sums.unsqueeze(0) - one_hot.unsqueeze(2) * f.unsqueeze(1)) / (counts - one_hot).unsqueeze(2)
    logits = scale * torch.einsum("bd,bnd->bn", f, F.normalize(protos, dim=2))
    return float((logits.argmax(1) == labels).to(f.dtype).mean()), float(F.cross_entropy(logits, labels))


#: With one example of a class there is no leave-one-out: the optional dimensions are then used when the
#: support's classes are clearly less alike in them than in the core dimensions (:func:`similarity_gap` at
#: least this much). Chosen on the shared sets other than x_sdd (ADR 0009, addendum "the 1-shot rule").
ONE_SHOT_GAP = 0.2


def similarity_gap(view_features: torch.Tensor, labels: torch.Tensor, optional: torch.Tensor) -> float:
    """Mean pairwise cosine similarity of the class means ``(V, B, D)`` -> ``(N, D)`` (views averaged) over the
    core dimensions, minus the same over the ``optional`` ones ``(D,)``: how much more the optional
    dimensions set the classes apart. ``nan`` with fewer than two classes."""
    n = int(labels.max()) + 1
    if n < 2:
        return math.nan
    means = class_means(view_features.mean(0), labels, n)
    off = ~torch.eye(n, dtype=torch.bool, device=means.device)

    def mean_similarity(cols: torch.Tensor) -> float:
        f = F.normalize(means[:, cols], dim=1)
        return float((f @ f.t())[off].mean())

    return mean_similarity(~optional) - mean_similarity(optional)


def use_optional(
    view_features: torch.Tensor, labels: torch.Tensor, optional: torch.Tensor, scale: float
) -> bool:
    """Whether this support set is better told apart with the ``optional`` dimensions ``(D,)`` than without:
    higher leave-one-out accuracy, or equal accuracy and lower loss. When a class has one example (no
    leave-one-out), whether :func:`similarity_gap` reaches :data:`ONE_SHOT_GAP`."""
    if int(torch.bincount(labels).min()) < 2:
        return similarity_gap(view_features, labels, optional) >= ONE_SHOT_GAP
    without = view_features * (~optional).to(view_features.dtype)
    acc_with, loss_with = loo_prototype_score(view_features, labels, scale)
    acc_without, loss_without = loo_prototype_score(without, labels, scale)
    return (acc_with, -loss_with) > (acc_without, -loss_without)


def check_part_weights(
    model: nn.Module, part_weights: Sequence[Sequence[float]]
) -> tuple[tuple[float, ...], ...]:
    """``part_weights`` as tuples, checked against ``model``: one positive weight per part of a model that has
    parts (``feature_parts`` and ``part_weights``, as :class:`~core.models.fused.FusedModel`)."""
    out = tuple(tuple(float(w) for w in ws) for ws in part_weights)
    if not out:
        return out
    own = getattr(model, "part_weights", None)
    if own is None or getattr(model, "feature_parts", None) is None:
        raise ValueError("part_weights needs a model made of parts (the fused model)")
    for ws in out:
        if len(ws) != len(own) or not all(w > 0 for w in ws):
            raise ValueError(
                f"each part_weights entry needs {len(own)} positive weights (one per part), got {list(ws)}"
            )
    return out


def choose_part_weights(
    view_features: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor | None,
    parts: torch.Tensor,
    own: Sequence[float],
    alternatives: Sequence[Sequence[float]],
    scale: float,
) -> torch.Tensor | None:
    """The task's multiplier: ``mask`` (or None: all ones) times the part weights that tell this support set
    ``(V, B, D)`` apart best, by leave-one-out nearest-prototype accuracy, then loss; the model's ``own``
    weights win ties and are kept when a class has one example. ``parts`` ``(D,)``: each dimension's part;
    an alternative's weights replace ``own`` (each part's dimensions multiplied by their ratio)."""
    if int(torch.bincount(labels).min()) < 2:
        return mask
    base = torch.ones(view_features.shape[-1], dtype=view_features.dtype, device=view_features.device)
    base = base if mask is None else mask.to(base)
    acc, loss = loo_prototype_score(view_features * base, labels, scale)
    best, best_key = mask, (acc, -loss)
    own_t = torch.tensor(own, dtype=base.dtype, device=base.device)
    index = parts.to(base.device)
    for weights in alternatives:
        candidate = base * (torch.tensor(weights, dtype=base.dtype, device=base.device) / own_t)[index]
        acc, loss = loo_prototype_score(view_features * candidate, labels, scale)
        if (acc, -loss) > best_key:
            best, best_key = candidate, (acc, -loss)
    return best


def fit_head(
    view_features: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    *,
    steps: int,
    lr: float = 0.01,
    scale: float = 10.0,
    patience: int = 10,
    on_step: StepCallback | None = None,
    mask: torch.Tensor | None = None,
) -> CosineHead:
    """Prototype-initialised cosine head, then ``steps`` Adam steps on all views' cross-entropy.

    Parameters
    ----------
    view_features
        ``(V, B, D)``: the support set's embeddings under V views (view 0 = the images as given).
    labels
        ``(B,)`` class indices ``0..n_classes-1``.
    steps
        Largest number of steps; 0 keeps the prototypes (no fitting).
    lr, scale
        Adam step size; starting temperature of the cosine logits (learned with the rest).
    patience
        Stop when the support loss has not improved by 1e-4 for this many steps.
    on_step
        Called after each step with ``(step, support loss before it)``; returning True stops (cancel).
    mask
        ``(D,)`` multiplier of the features, 0 where the head leaves a dimension out (see :func:`fit_heads`);
        None: all, as they are.

    Returns
    -------
    CosineHead
        Detached tensors on the features' device.
    """
    keep = torch.ones(1, labels.shape[0], dtype=torch.bool, device=view_features.device)
    stop = None
    if on_step is not None:
        callback = on_step

        def stop(step: int, losses: torch.Tensor) -> bool:
            return bool(callback(step, float(losses[0])))

    return fit_heads(view_features, labels, n_classes, keep, steps, lr, scale, patience, stop, mask)[0]


#: Adam's constants, as ``torch.optim.Adam``'s defaults.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def fit_heads(
    view_features: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    keep: torch.Tensor,
    steps: int,
    lr: float = 0.01,
    scale: float = 10.0,
    patience: int = 10,
    stop: Callable[[int, torch.Tensor], bool] | None = None,
    mask: torch.Tensor | None = None,
) -> list[CosineHead]:
    """Fit P cosine heads at once, head p on the support examples ``keep[p]`` selects: what :func:`fit_head`
    does for each of them, in one batched computation (leave-one-out fits a head per example).

    Each head starts from the prototypes of its own examples and takes Adam steps (``torch.optim.Adam``'s
    update, written out so the P heads share each operation) until ``steps`` or until its own support loss
    has not improved by 1e-4 for ``patience`` steps; a head that stopped keeps its weights while the others
    go on. One pass of Python per step for all heads, instead of one per head: the interpreter is held a
    fraction of the time, which is what keeps the window's GUI thread responsive during adaptation.

    Parameters
    ----------
    view_features
        ``(V, B, D)`` support embeddings under V views.
    labels
        ``(B,)`` class indices ``0..n_classes-1``; every head's examples must cover every class.
    keep
        ``(P, B)`` bool: the examples each head is fitted to.
    stop
        Called after each step with ``(step, losses (P,) before it)``; returning True stops every head
        where it is (cancel).
    mask
        ``(D,)`` multiplier of the features: 0 on dimensions the heads leave out (e.g. optional ones a task
        does not use: they get zero weight), else the dimension's scale (1, or a part weight the task chose);
        the heads carry it. The heads are fitted on the used dimensions alone: the same heads as on the
        features multiplied by the mask (a zero feature gives its weight no gradient), at the cost of the
        used width only.

    Returns
    -------
    list[CosineHead]
        P detached heads, weights ``(N, D)``.
    """
    feats = view_features.detach()
    full_width = feats.shape[-1]
    used = None
    if mask is not None:
        if mask.shape != (full_width,):
            raise ValueError(f"mask {tuple(mask.shape)} does not match {full_width} feature dimensions")
        mask = mask.to(device=feats.device, dtype=feats.dtype)
        used = mask.nonzero().flatten()
        feats = feats.index_select(2, used) * mask[used]
    device, dtype = feats.device, feats.dtype
    keep = keep.to(device=device, dtype=torch.bool)
    n_heads, n_ex = keep.shape
    if n_ex != labels.shape[0] or feats.shape[1] != n_ex:
        raise ValueError(
            f"keep {tuple(keep.shape)} does not match {n_ex} labels / features {tuple(feats.shape)}"
        )
    kept = keep.to(dtype)  # (P, B)
    one_hot = F.one_hot(labels, n_classes).to(dtype)  # (B, N)
    counts = kept @ one_hot  # (P, N)
    if bool((counts == 0).any()):
        raise ValueError("every head needs at least one example of every class")
    protos = torch.einsum("pb,bn,bd->pnd", kept, one_hot, feats.mean(0)) / counts.unsqueeze(2)
    width = n_classes * protos.shape[2]
    theta = torch.cat(
        [protos.reshape(n_heads, width), torch.zeros(n_heads, n_classes + 1, device=device, dtype=dtype)], 1
    )
    theta[:, -1] = math.log(scale)
    if steps > 0:
        x = F.normalize(feats.reshape(-1, feats.shape[-1]), dim=1)  # (V*B, D)
        y = labels.repeat(feats.shape[0])
        weights = (kept / kept.sum(1, keepdim=True)).repeat(1, feats.shape[0]) / feats.shape[0]  # (P, V*B)
        _adam_steps(theta, x, y, weights, n_classes, steps, lr, patience, stop)
    w = theta[:, :width].reshape(n_heads, n_classes, -1)
    if used is not None:
        w = torch.zeros(n_heads, n_classes, full_width, device=device, dtype=dtype).index_copy_(2, used, w)
    b = theta[:, width:-1]
    return [CosineHead(w[p].clone(), b[p].clone(), float(theta[p, -1].exp()), mask) for p in range(n_heads)]


def _adam_steps(
    theta: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    n_classes: int,
    steps: int,
    lr: float,
    patience: int,
    stop: Callable[[int, torch.Tensor], bool] | None,
) -> None:
    """Adam on the heads packed in ``theta`` ``(P, N*D + N + 1)`` (weights, biases, log temperature), in
    place, until ``steps``, every head's early stop, or ``stop`` (given the losses of the heads still going).
    Heads that stopped leave the batch, so the later steps cost only what the remaining heads need."""
    width = theta.shape[1] - n_classes - 1
    beta1, beta2 = ADAM_BETAS
    going = torch.arange(theta.shape[0], device=theta.device)  # rows of theta still being fitted
    th = theta.clone()
    exp_avg = torch.zeros_like(th)
    exp_avg_sq = torch.zeros_like(th)
    best = torch.full((len(going),), math.inf, dtype=th.dtype, device=th.device)
    stale = torch.zeros(len(going), dtype=torch.long, device=th.device)
    try:
        for step in range(1, steps + 1):
            n_heads = len(going)
            params = th.detach().requires_grad_(True)
            with torch.enable_grad():
                w = F.normalize(params[:, :width].reshape(n_heads, n_classes, -1), dim=2)
                logits = params[:, -1].exp()[:, None, None] * torch.matmul(x, w.transpose(1, 2))
                logits = logits + params[:, width:-1].unsqueeze(1)  # (P, V*B, N)
                ce = F.cross_entropy(logits.reshape(-1, n_classes), y.repeat(n_heads), reduction="none")
                # (P,): each head's mean over its examples and views
                losses = (ce.reshape(n_heads, -1) * weights).sum(1)
                (grad,) = torch.autograd.grad(losses.sum(), params)
            # torch.optim.Adam's update
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**step)).add_(ADAM_EPS)
            th.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1**step))
            values = losses.detach()
            stale = torch.where(values < best - 1e-4, 0, stale + 1)
            best = torch.minimum(best, values)
            if stop is not None and stop(step, values):
                return
            done = stale >= patience
            if bool(done.any()):
                theta[going[done]] = th[done]
                left = ~done
                going, th, exp_avg, exp_avg_sq = going[left], th[left], exp_avg[left], exp_avg_sq[left]
                weights, best, stale = weights[left], best[left], stale[left]
                if not len(going):
                    return
    finally:
        theta[going] = th


@register_learner("finetune")
class FineTuneHead(MetaLearner):
    """Cosine classifier on the model's (frozen) embedding, fitted to each support set.

    Parameters
    ----------
    model
        ``features`` ``(B, C, H, W) -> (B, D)``; its ``head`` is not used.
    n_way
        Classes per training task (any number works at adaptation).
    inner_steps
        Fitting steps at adaptation (0 = prototypes only).
    inner_lr
        Adam step size of the fitting.
    views
        Support views embedded for fitting, from :data:`core.imaging.augment.TENSOR_VIEWS`.
    scale
        Starting temperature of the cosine logits.
    patience
        Early stopping: steps without improvement of the support loss.
    chunk_size
        Largest batch pushed through the embedding at once (32: a 224 px batch of 32 keeps EfficientNet's
        activations near 150 MB; a few hundred at once made embedding a data set several times slower).
    part_weights
        Other weightings of a fused model's parts to try on each task (one weight per part each, e.g.
        ``[[1.0, 1.0]]`` beside the model's own ``1.0, 0.7``): a task with two or more examples per class
        takes the one its leave-one-out prefers (:func:`choose_part_weights`). Empty: the model's own only.
    """

    name = "finetune"
    any_way_training = True

    def __init__(
        self,
        model: nn.Module,
        n_way: int = 5,
        inner_steps: int = 50,
        inner_lr: float = 0.01,
        views: Sequence[str] = ("identity", "hflip"),
        scale: float = 10.0,
        patience: int = 10,
        chunk_size: int = 32,
        part_weights: Sequence[Sequence[float]] = (),
    ) -> None:
        super().__init__(model, n_way)
        unknown = [v for v in views if v not in TENSOR_VIEWS]
        if not views or unknown:
            raise ValueError(f"views must name some of {', '.join(TENSOR_VIEWS)}; got {list(views)}")
        if int(inner_steps) < 0 or float(inner_lr) <= 0 or float(scale) <= 0 or int(patience) < 1:
            raise ValueError("need inner_steps >= 0, inner_lr > 0, scale > 0 and patience >= 1")
        self.inner_steps = int(inner_steps)
        self.inner_lr = float(inner_lr)
        self.views = tuple(views)
        self.scale = float(scale)
        self.patience = int(patience)
        self.chunk_size = int(chunk_size)
        self.part_weights = check_part_weights(model, part_weights)
        # learned temperature of the episodic (meta-training) objective, as in Meta-Baseline
        self.log_scale = nn.Parameter(torch.tensor(math.log(self.scale)))
        # support embeddings by image content, reused across adaptations (emptied whenever training starts)
        self.cache = EmbeddingCache()

    def train(self, mode: bool = True) -> FineTuneHead:
        if mode:
            self.cache.clear()  # the embedding may change while training: never serve an old one
        return super().train(mode)

    def _load_from_state_dict(self, *args: object, **kwargs: object) -> None:
        self.cache.clear()
        super()._load_from_state_dict(*args, **kwargs)  # type: ignore[arg-type]

    def hyper(self) -> dict[str, object]:
        return {
            "inner_steps": self.inner_steps,
            "inner_lr": self.inner_lr,
            "views": list(self.views),
            "scale": self.scale,
            "patience": self.patience,
        } | ({"part_weights": [list(w) for w in self.part_weights]} if self.part_weights else {})

    # -- meta-training: prototypes with a learned temperature (differentiable w.r.t. the embedding) --------
    def task_logits(self, task: Task) -> torch.Tensor:
        protos = class_means(self.model.features(task.support_x), task.support_y, task.n_way)
        head = CosineHead(protos, torch.zeros(task.n_way, device=protos.device), 1.0)
        return self.log_scale.exp() * head.logits(self.model.features(task.query_x))

    # -- deployment ---------------------------------------------------------------------------------------
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, D)`` of prepared images ``(B, C, H, W)`` (eval mode, no autograd)."""
        return eval_chunks(self.model, self.model.features, x, self.chunk_size, "input")

    def embed_views(self, x: torch.Tensor, cached: bool = False) -> torch.Tensor:
        """Embeddings ``(V, B, D)`` of the images under this learner's support views.

        ``cached`` reuses (and keeps) embeddings of images seen before, by content: the support set's path.
        """
        if not cached:
            return torch.stack([self.embed(v) for v in tensor_views(x, self.views)])
        digests = [tensor_digest(image) for image in x]
        return torch.stack(
            [
                self.cache.embed(view, x, lambda b, v=view: self.embed(tensor_views(b, [v])[0]), digests)
                for view in self.views
            ]
        )

    def warm(self, x: torch.Tensor) -> None:
        """Embed support images ``(B, C, H, W)`` ahead of :meth:`adapt` (call it when a part is labelled)."""
        if len(x):
            self.embed_views(x, cached=True)

    def adapt_embedded(
        self,
        view_features: torch.Tensor,
        labels: torch.Tensor,
        steps: int | None = None,
        on_step: StepCallback | None = None,
    ) -> CosineHead:
        """Fit the head to support embeddings ``(V, B, D)`` (from :meth:`embed_views`) and labels ``(B,)``.

        The model's optional dimensions are used or left out as :func:`use_optional` decides; the head
        remembers the choice (its ``mask``)."""
        labels = labels.to(view_features.device, torch.long)
        return fit_head(
            view_features,
            labels,
            int(labels.max()) + 1,
            steps=self.inner_steps if steps is None else int(steps),
            lr=self.inner_lr,
            scale=self.scale,
            patience=self.patience,
            on_step=on_step,
            mask=self.feature_mask(view_features, labels),
        )

    def feature_mask(self, view_features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        """``(D,)`` multiplier of this task's embedding: 0 on the model's optional dimensions when
        :func:`use_optional` leaves them out, and each part's dimensions rescaled when the task takes one of the
        learner's ``part_weights`` (:func:`choose_part_weights`); None: every dimension as it is."""
        mask = None
        optional = getattr(self.model, "optional_features", None)
        if optional is not None and bool(optional.any()):
            optional = optional.to(view_features.device)
            if not use_optional(view_features, labels, optional, self.scale):
                mask = (~optional).to(view_features.dtype)
        if not self.part_weights:
            return mask
        return choose_part_weights(
            view_features, labels, mask, self.model.feature_parts, self.model.part_weights, self.part_weights,
            self.scale,
        )  # fmt: skip

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        steps: int | None = None,
        on_step: StepCallback | None = None,
    ) -> AdaptedClassifier:
        """Embed the support views, fit the head (``steps`` overrides ``inner_steps``), return the classifier."""
        n = support_classes(support_x, support_y)
        feats = self.embed_views(support_x, cached=True)
        head = self.adapt_embedded(feats, support_y, steps, on_step)
        model = self.model

        def logits_fn(q: torch.Tensor) -> torch.Tensor:
            return head.logits(model.features(q))

        classifier = AdaptedClassifier(model, logits_fn, n, self.chunk_size)
        classifier.support_logits = head.logits(
            feats[0]
        )  # the support set as given, without embedding it again
        return classifier

    def leave_one_out(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        steps: int | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> torch.Tensor | None:
        """As :meth:`MetaLearner.leave_one_out`, on the (cached) support embeddings: each left-out image costs
        one head fit, no pass through the backbone."""
        n = support_classes(support_x, support_y)
        feats = self.embed_views(support_x, cached=True)
        labels = support_y.to(feats.device, torch.long)
        mask = self.feature_mask(feats, labels)  # the choice adapt makes on the whole support set
        out = torch.full((len(support_y), n), math.nan)
        judged = loo_indices(support_y)
        if not judged:
            return out
        keep = torch.ones(len(judged), len(labels), dtype=torch.bool, device=feats.device)
        keep[torch.arange(len(judged)), torch.tensor(judged)] = False
        heads = fit_heads(
            feats,
            labels,
            n,
            keep,
            self.inner_steps if steps is None else int(steps),
            self.inner_lr,
            self.scale,
            self.patience,
            None if stop is None else (lambda _step, _losses: bool(stop())),
            mask,
        )
        if stop is not None and stop():
            return None
        for i, head in zip(judged, heads, strict=True):
            out[i] = head.logits(feats[0, i : i + 1]).softmax(1)[0].detach().to("cpu", out.dtype)
        return out
