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

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, N)`` for embeddings ``(B, D)``."""
        w = F.normalize(self.weight, dim=1)
        return self.scale * F.normalize(features, dim=1) @ w.t() + self.bias


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

    Returns
    -------
    CosineHead
        Detached tensors on the features' device.
    """
    feats = view_features.detach()
    protos = class_means(feats.mean(0), labels, n_classes)
    if steps <= 0:
        return CosineHead(protos, torch.zeros(n_classes, device=feats.device, dtype=feats.dtype), scale)
    x = F.normalize(feats.reshape(-1, feats.shape[-1]), dim=1)
    y = labels.repeat(feats.shape[0])
    weight = nn.Parameter(protos.clone())
    bias = nn.Parameter(torch.zeros(n_classes, device=feats.device, dtype=feats.dtype))
    log_scale = nn.Parameter(torch.tensor(math.log(scale), device=feats.device, dtype=feats.dtype))
    opt = torch.optim.Adam([weight, bias, log_scale], lr=lr)
    best, stale = math.inf, 0
    with torch.enable_grad():
        for step in range(1, steps + 1):
            logits = log_scale.exp() * x @ F.normalize(weight, dim=1).t() + bias
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            stale = 0 if value < best - 1e-4 else stale + 1
            best = min(best, value)
            if on_step is not None and on_step(step, value):
                break
            if stale >= patience:
                break
    return CosineHead(weight.detach(), bias.detach(), float(log_scale.detach().exp()))


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
        }

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
        """Fit the head to support embeddings ``(V, B, D)`` (from :meth:`embed_views`) and labels ``(B,)``."""
        n = int(labels.max()) + 1
        return fit_head(
            view_features,
            labels.to(view_features.device, torch.long),
            n,
            steps=self.inner_steps if steps is None else int(steps),
            lr=self.inner_lr,
            scale=self.scale,
            patience=self.patience,
            on_step=on_step,
        )

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
        out = torch.full((len(support_y), n), math.nan)
        for i in loo_indices(support_y):
            if stop is not None and stop():
                return None
            keep = torch.arange(len(labels), device=feats.device) != i
            head = self.adapt_embedded(feats[:, keep], labels[keep], steps)
            out[i] = head.logits(feats[0, i : i + 1]).softmax(1)[0].detach().to("cpu", out.dtype)
        return out
