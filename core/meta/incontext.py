"""Model-based meta-learning: an attention network reads the labelled support set and classifies the queries.

``incontext`` is the third family (beside the gradient learners and ProtoNet): adaptation is one forward pass,
no gradient step. It is a small set transformer in the spirit of SNAIL / Conditional Neural Processes:

1. every image is embedded by the backbone (``model.features``) and projected to ``d_model`` tokens;
2. each support token is told its label by adding a projection of its class's mean token (labels enter only
   through this per-class pooling, never as one-hot slots, so there is no maximum number of classes);
3. ``layers`` pre-norm attention blocks: support tokens attend to all support tokens; each query token attends
   to the support tokens only (cross-attention), so a query's prediction never depends on the other queries;
4. class tokens are the means of the encoded support tokens per class; query logits are
   ``-scale * |q - c_k|^2 / d_model`` (learned scale).

Hence predictions are invariant to the order of the support set and equivariant to renaming the classes, and
one trained learner serves any N-way task with N >= 2 (trained on ``n_way``; tested up to 7-way).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

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


class _AttentionBlock(nn.Module):
    """Pre-norm multi-head attention + feed-forward; ``keys`` are the support tokens of the same layer."""

    def __init__(self, d_model: int, heads: int, ff_mult: int) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(d_model)
        self.norm_kv = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff_mult * d_model), nn.GELU(), nn.Linear(ff_mult * d_model, d_model)
        )

    def forward(self, tokens: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        """``tokens`` ``(T, d)`` attend to ``support`` ``(S, d)`` -> ``(T, d)``."""
        q = self.norm_q(tokens).unsqueeze(0)
        kv = self.norm_kv(support).unsqueeze(0)
        tokens = tokens + self.attn(q, kv, kv, need_weights=False)[0].squeeze(0)
        return tokens + self.ff(self.norm_ff(tokens))


@register_learner("incontext")
class InContext(MetaLearner):
    """Attention-based (model-based) few-shot classifier; no gradient steps at adaptation.

    Parameters
    ----------
    model
        Backbone with ``features`` ``(B, C, H, W) -> (B, D)`` and ``embedding_dim`` D (its ``head`` is unused).
    n_way
        Classes per training task (episodes of other sizes are accepted too: any N >= 2).
    d_model, layers, heads, ff_mult
        Token width, number of attention blocks, attention heads (must divide ``d_model``), feed-forward
        expansion.
    chunk_size
        Largest query batch pushed through at once by the adapted classifier.
    inner_lr, inner_steps, first_order
        Accepted and ignored, so one command line or config can drive every learner.
    """

    name = "incontext"
    any_way_training = True

    def __init__(
        self,
        model: nn.Module,
        n_way: int = 5,
        d_model: int = 64,
        layers: int = 2,
        heads: int = 4,
        ff_mult: int = 2,
        chunk_size: int = DEFAULT_CHUNK,
        inner_lr: float | None = None,
        inner_steps: int | None = None,
        first_order: bool | None = None,
    ) -> None:
        del inner_lr, inner_steps, first_order
        super().__init__(model, n_way)
        dim = getattr(model, "embedding_dim", None)
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(
                "incontext needs a model with an integer 'embedding_dim' (the features' width D)"
            )
        if d_model < 1 or layers < 0 or heads < 1 or ff_mult < 1:
            raise ValueError(
                f"d_model, heads and ff_mult must be positive and layers >= 0, got {d_model}, {heads}, "
                f"{ff_mult}, {layers}"
            )
        if d_model % heads:
            raise ValueError(f"heads ({heads}) must divide d_model ({d_model})")
        self.d_model, self.layers, self.heads, self.ff_mult = (
            int(d_model),
            int(layers),
            int(heads),
            int(ff_mult),
        )
        self.chunk_size = int(chunk_size)
        self.embed = nn.Sequential(nn.Linear(dim, d_model), nn.LayerNorm(d_model))
        self.label_context = nn.Linear(d_model, d_model)
        self.blocks = nn.ModuleList(_AttentionBlock(d_model, heads, ff_mult) for _ in range(layers))
        self.out_norm = nn.LayerNorm(d_model)
        self.log_scale = nn.Parameter(torch.tensor(0.0))

    def hyper(self) -> dict[str, Any]:
        return {"d_model": self.d_model, "layers": self.layers, "heads": self.heads, "ff_mult": self.ff_mult}

    # -- the network ----------------------------------------------------------------------------------------
    def encode_support(self, features: torch.Tensor, labels: torch.Tensor, n: int) -> list[torch.Tensor]:
        """Support embeddings ``(S, D)`` with labels ``(S,)`` -> token states ``(S, d)`` at every layer input
        and the output (``layers + 1`` tensors)."""
        tokens = self.embed(features)
        tokens = tokens + self.label_context(class_means(tokens, labels, n)[labels])
        states = [tokens]
        for block in self.blocks:
            tokens = block(tokens, tokens)
            states.append(tokens)
        return states

    def class_tokens(self, states: list[torch.Tensor], labels: torch.Tensor, n: int) -> torch.Tensor:
        """Encoded support -> one token per class ``(N, d)``."""
        return class_means(self.out_norm(states[-1]), labels, n)

    def query_logits(
        self, features: torch.Tensor, states: list[torch.Tensor], classes: torch.Tensor
    ) -> torch.Tensor:
        """Query embeddings ``(Q, D)`` -> logits ``(Q, N)`` given the support states and class tokens."""
        tokens = self.embed(features)
        for block, support in zip(self.blocks, states[:-1], strict=True):
            tokens = block(tokens, support)
        q = self.out_norm(tokens)
        sq = (q * q).sum(1, keepdim=True) - 2 * q @ classes.t() + (classes * classes).sum(1).unsqueeze(0)
        return -self.log_scale.exp() * sq.clamp_min(0) / self.d_model

    def task_logits(self, task: Task) -> torch.Tensor:
        """Query logits ``(M, N)``; differentiable w.r.t. the backbone and the attention network."""
        n = task.n_way
        states = self.encode_support(self.model.features(task.support_x), task.support_y, n)
        classes = self.class_tokens(states, task.support_y, n)
        return self.query_logits(self.model.features(task.query_x), states, classes)

    # -- deployment -----------------------------------------------------------------------------------------
    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        steps: int | None = None,
        on_step: StepCallback | None = None,
    ) -> AdaptedClassifier:
        """Read the support set once (one forward pass); ``steps`` and ``on_step`` are unused: no gradient steps.

        Parameters
        ----------
        support_x
            ``(S, C, H, W)`` images.
        support_y
            ``(S,)`` labels ``0..N-1``, every class present, N >= 2.
        """
        del steps, on_step
        n = support_classes(support_x, support_y)
        x = prepare_images(self.model, support_x, "support")
        y = support_y.to(x.device, torch.long)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                states = self.encode_support(self.model.features(x), y, n)
                classes = self.class_tokens(states, y, n)
        finally:
            self.train(was_training)

        def logits_fn(q: torch.Tensor) -> torch.Tensor:
            # AdaptedClassifier switches only the backbone to eval; the attention network has no dropout or
            # batch statistics, so its mode does not matter here.
            return self.query_logits(self.model.features(q), states, classes)

        return AdaptedClassifier(self.model, logits_fn, n, self.chunk_size)
