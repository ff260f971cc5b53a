"""Prototypical Networks (Snell et al. 2017): classify by squared distance to the support class means."""

from __future__ import annotations

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
    prototype_logits,
    support_classes,
)
from core.meta.registry import register_learner


@register_learner("protonet")
class ProtoNet(MetaLearner):
    """Logits ``-|features(x) - c_k|^2`` with ``c_k`` the mean embedding of class k's support images.

    The model's ``head`` is ignored. Trains on tasks of any number of classes.
    """

    name = "protonet"
    any_way_training = True

    def __init__(
        self,
        model: nn.Module,
        n_way: int = 5,
        chunk_size: int = DEFAULT_CHUNK,
        inner_lr: float | None = None,
        inner_steps: int | None = None,
        first_order: bool | None = None,
    ) -> None:
        # The gradient learners' common options are accepted and ignored, so one command line or config
        # can drive every learner; anything else is still a TypeError -> clear ValueError in create_learner.
        del inner_lr, inner_steps, first_order
        super().__init__(model, n_way)
        self.chunk_size = int(chunk_size)

    def task_logits(self, task: Task) -> torch.Tensor:
        """Query logits ``(M, N)``, differentiable w.r.t. the feature extractor."""
        # Support and query are embedded separately, exactly as adapt() + predict() do at deployment.
        support = self.model.features(task.support_x)
        protos = class_means(support, task.support_y, task.n_way)
        return prototype_logits(self.model.features(task.query_x), protos)

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        steps: int | None = None,
        on_step: StepCallback | None = None,
    ) -> AdaptedClassifier:
        """Embed the support set once and keep its class means; ``steps`` and ``on_step`` are unused."""
        del steps, on_step
        n = support_classes(support_x, support_y)
        x = prepare_images(self.model, support_x, "support")
        model = self.model
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                protos = class_means(model.features(x), support_y.to(x.device, torch.long), n)
        finally:
            model.train(was_training)

        def logits_fn(q: torch.Tensor) -> torch.Tensor:
            return prototype_logits(model.features(q), protos)

        return AdaptedClassifier(model, logits_fn, n, self.chunk_size)
