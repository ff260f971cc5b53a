"""Adaptation reports each inner step and can be stopped between steps (the GUI's curve and Cancel)."""

from __future__ import annotations

import pytest
import torch

from core.meta import create_learner
from core.models import create_model


def _support() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(6, 1, 16, 16)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    return x, y


@pytest.mark.parametrize("name", ["maml", "fomaml", "anil", "metasgd"])
def test_gradient_learners_report_every_step_with_a_falling_loss(name: str) -> None:
    # a fixed start: six steps at this rate need not lower the loss from every random one
    torch.manual_seed(0)
    model = create_model("conv4", in_channels=1, n_way=3, image_size=16, width=8, norm="group")
    learner = create_learner(name, model, n_way=3, inner_lr=0.1, inner_steps=2)
    seen: list[tuple[int, float]] = []
    learner.adapt(*_support(), steps=6, on_step=lambda step, loss: seen.append((step, loss)) and None)
    assert [s for s, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert seen[-1][1] < seen[0][1]


def test_returning_true_stops_adaptation_early() -> None:
    model = create_model("conv4", in_channels=1, n_way=3, image_size=16, width=8, norm="group")
    learner = create_learner("maml", model, n_way=3, inner_lr=0.1)
    x, y = _support()
    steps: list[int] = []
    stopped = learner.adapt(x, y, steps=10, on_step=lambda step, loss: steps.append(step) or step >= 2)
    two = learner.adapt(x, y, steps=2)
    assert steps == [1, 2]
    torch.testing.assert_close(stopped.predict_proba(x), two.predict_proba(x))


def test_protonet_accepts_the_callback_and_never_calls_it() -> None:
    model = create_model("conv4", in_channels=1, n_way=3, image_size=16, width=8, norm="group")
    learner = create_learner("protonet", model, n_way=3)
    calls: list[int] = []
    learner.adapt(*_support(), on_step=lambda step, loss: calls.append(step))
    assert calls == []
