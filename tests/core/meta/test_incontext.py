"""The model-based learner ``incontext``: contract, symmetry, errors, and that it learns a toy task."""

from __future__ import annotations

import pytest
import torch

import core.meta.incontext  # noqa: F401  (registers "incontext" until core.meta imports it)
from core.meta import Task, create_learner, learner_from_config, list_learners
from core.models import create_model


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("conv4", in_channels=1, n_way=5, image_size=16, width=8, norm="group")


def _episode(n: int, k: int, q: int, seed: int, size: int = 16, noise: float = 0.6) -> Task:
    """Class c's images are noise around a class-specific template (fresh templates per seed)."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(n, 1, size, size, generator=g)
    sy = torch.arange(n).repeat_interleave(k)
    qy = torch.arange(n).repeat_interleave(q)
    sx = templates[sy] + noise * torch.randn(len(sy), 1, size, size, generator=g)
    qx = templates[qy] + noise * torch.randn(len(qy), 1, size, size, generator=g)
    return Task(sx, sy, qx, qy)


def test_incontext_is_registered_and_rebuilds_from_its_config() -> None:
    assert "incontext" in list_learners()
    learner = create_learner("incontext", _model(), n_way=5, d_model=32, layers=1, heads=2)
    config = learner.config()
    assert config == {"name": "incontext", "n_way": 5, "d_model": 32, "layers": 1, "heads": 2, "ff_mult": 2}
    rebuilt = learner_from_config(config, _model())
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in learner.parameters())


def test_predictions_ignore_support_order_and_follow_renamed_labels() -> None:
    learner = create_learner("incontext", _model(), d_model=32, layers=2, heads=4)
    task = _episode(4, 3, 5, seed=3)
    probs = learner.adapt(task.support_x, task.support_y).predict_proba(task.query_x)

    order = torch.randperm(len(task.support_y), generator=torch.Generator().manual_seed(1))
    shuffled = learner.adapt(task.support_x[order], task.support_y[order]).predict_proba(task.query_x)
    torch.testing.assert_close(shuffled, probs, atol=1e-5, rtol=1e-4)

    rename = torch.tensor([2, 0, 3, 1])  # old label i -> new label rename[i]
    renamed = learner.adapt(task.support_x, rename[task.support_y]).predict_proba(task.query_x)
    torch.testing.assert_close(renamed[:, rename], probs, atol=1e-5, rtol=1e-4)


def test_a_query_prediction_does_not_depend_on_the_other_queries() -> None:
    learner = create_learner("incontext", _model(), d_model=32, layers=2, heads=4)
    task = _episode(3, 2, 4, seed=5)
    adapted = learner.adapt(task.support_x, task.support_y)
    together = adapted.predict_proba(task.query_x)
    alone = torch.cat([adapted.predict_proba(task.query_x[i : i + 1]) for i in range(len(task.query_x))])
    torch.testing.assert_close(alone, together, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("n_classes", [2, 3, 7])
def test_adapt_serves_any_class_count_without_touching_the_weights(n_classes: int) -> None:
    learner = create_learner("incontext", _model(), n_way=5, d_model=32, layers=1, heads=2)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    task = _episode(n_classes, 2, 3, seed=2)
    adapted = learner.adapt(task.support_x, task.support_y, steps=5)  # steps ignored: no gradient steps
    probs = adapted.predict_proba(task.query_x)
    assert probs.shape == (len(task.query_x), n_classes)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(probs)))
    assert torch.equal(adapted.predict(task.query_x), probs.argmax(1))
    for k, v in learner.state_dict().items():
        assert torch.equal(v, before[k]), f"adapt changed {k}"


def test_meta_loss_reaches_backbone_and_attention_parameters() -> None:
    learner = create_learner("incontext", _model(), d_model=32, layers=1, heads=2)
    loss, metrics = learner([_episode(5, 1, 2, seed=s) for s in range(2)])
    loss.backward()
    assert metrics["loss"] == pytest.approx(float(loss.detach()))
    assert 0.0 <= metrics["accuracy"] <= 1.0
    for key, p in learner.named_parameters():
        if key.startswith("model.head."):
            continue  # the backbone's linear head is unused by incontext
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no meta-gradient on {key}"


def test_shape_and_label_errors_are_clear() -> None:
    learner = create_learner("incontext", _model(), d_model=32, layers=1, heads=2)
    task = _episode(3, 2, 2, seed=0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        learner.adapt(task.support_x[0], task.support_y)
    with pytest.raises(ValueError, match="4 images but 6 labels"):
        learner.adapt(task.support_x[:4], task.support_y)
    with pytest.raises(ValueError, match="single class"):
        learner.adapt(task.support_x, torch.zeros_like(task.support_y))
    with pytest.raises(ValueError, match="no example"):
        learner.adapt(task.support_x, task.support_y * 2)
    adapted = learner.adapt(task.support_x, task.support_y)
    with pytest.raises(ValueError, match="1-channel"):
        adapted.predict(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="must divide d_model"):
        create_learner("incontext", _model(), d_model=30, heads=4)
    with pytest.raises(ValueError, match="embedding_dim"):
        create_learner("incontext", _Headed())


class _Headed(torch.nn.Module):
    """Has ``features`` and ``head`` but no ``embedding_dim``."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Flatten()
        self.head = torch.nn.Linear(256, 2)


class _LinearNet(torch.nn.Module):
    """Smallest possible backbone: flatten + linear (keeps the learning test fast on 2 shared cores)."""

    def __init__(self, side: int, dim: int) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(side * side, dim))
        self.head = torch.nn.Linear(dim, 5)
        self.embedding_dim = dim


def _masked_episode(n: int, k: int, q: int, seed: int, side: int = 8, informative: int = 6) -> Task:
    """Only the first ``informative`` pixels carry the class; the rest is strong noise that swamps an
    unlearned distance, so good accuracy needs a meta-learned embedding."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.zeros(n, side * side)
    templates[:, :informative] = torch.randn(n, informative, generator=g)
    sy = torch.arange(n).repeat_interleave(k)
    qy = torch.arange(n).repeat_interleave(q)

    def draw(y: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(len(y), side * side, generator=g)
        noise[:, :informative] *= 0.2
        noise[:, informative:] *= 3.0
        return (templates[y] + noise).view(len(y), 1, side, side)

    return Task(draw(sy), sy, draw(qy), qy)


def test_meta_training_learns_a_toy_task_family() -> None:
    """Episodic training on fresh random classes lifts held-out 5-way accuracy far above its start."""
    torch.manual_seed(0)
    learner = create_learner("incontext", _LinearNet(8, 32), n_way=5, d_model=32, layers=1, heads=2)
    held_out = [_masked_episode(5, 3, 6, seed=10_000 + s) for s in range(10)]

    def accuracy() -> float:
        hits = [
            (learner.adapt(t.support_x, t.support_y).predict(t.query_x) == t.query_y).float().mean()
            for t in held_out
        ]
        return float(torch.stack(hits).mean())

    before = accuracy()
    opt = torch.optim.Adam(learner.parameters(), lr=3e-3)
    for step in range(150):
        loss, _ = learner.meta_loss([_masked_episode(5, 3, 6, seed=step * 4 + j) for j in range(4)])
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = accuracy()
    print(f"toy accuracy {before:.2f} -> {after:.2f}")
    assert after >= 0.8, f"accuracy after meta-training {after:.2f} (before {before:.2f})"
    assert after > before + 0.3
