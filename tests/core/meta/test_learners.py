"""Behaviour of every learner: registry, ProtoNet maths, adaptation to any class count, clear errors."""

from __future__ import annotations

import pytest
import torch

from core.meta import Task, create_learner, learner_from_config, list_learners
from core.models import create_model

BUILTIN = ["anil", "fomaml", "maml", "metasgd", "protonet"]


def _conv4(n_way: int = 5, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("conv4", in_channels=1, n_way=n_way, image_size=16, width=4)


def _episode(n: int, k: int, q: int, seed: int, size: int = 16) -> Task:
    """Class c's images are noise around a class-specific template, so tasks are learnable."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(n, 1, size, size, generator=g)
    sy = torch.arange(n).repeat_interleave(k)
    qy = torch.arange(n).repeat_interleave(q)
    sx = templates[sy] + 0.3 * torch.randn(len(sy), 1, size, size, generator=g)
    qx = templates[qy] + 0.3 * torch.randn(len(qy), 1, size, size, generator=g)
    return Task(sx, sy, qx, qy)


def test_list_learners_holds_the_builtin_families() -> None:
    assert set(BUILTIN) <= set(list_learners())
    assert list_learners() == sorted(list_learners())


def test_unknown_learner_name_error_lists_the_known_names() -> None:
    with pytest.raises(ValueError, match="unknown learner 'mamll'") as info:
        create_learner("mamll", _conv4())
    for name in BUILTIN:
        assert name in str(info.value)


def test_bad_hyper_parameter_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="bad hyper-parameters for learner 'protonet'"):
        create_learner("protonet", _conv4(), alpha=0.1)
    with pytest.raises(ValueError, match="inner_lr must be > 0"):
        create_learner("maml", _conv4(), inner_lr=0.0)


def test_model_without_features_and_head_is_rejected() -> None:
    with pytest.raises(ValueError, match="'features' and 'head'"):
        create_learner("maml", torch.nn.Linear(3, 2))


@pytest.mark.parametrize("name", BUILTIN)
def test_meta_loss_backward_reaches_every_model_parameter_and_reports_metrics(name: str) -> None:
    model = _conv4()
    learner = create_learner(name, model, n_way=5, inner_steps=1)
    loss, metrics = learner([_episode(5, 1, 2, seed=s) for s in range(2)])  # forward == meta_loss (DDP)
    loss.backward()
    assert set(metrics) >= {"loss", "accuracy"}
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["loss"] == pytest.approx(float(loss.detach()))
    for key, p in model.features.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no meta-gradient on features.{key}"


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("n_classes", [2, 3, 7])
def test_adapt_works_for_any_class_count_and_leaves_the_model_untouched(name: str, n_classes: int) -> None:
    model = _conv4(n_way=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    learner = create_learner(name, model, n_way=5, inner_lr=0.1, inner_steps=2)
    task = _episode(n_classes, 3, 4, seed=1)
    adapted = learner.adapt(task.support_x, task.support_y, steps=3)
    probs = adapted.predict_proba(task.query_x)
    assert probs.shape == (len(task.query_x), n_classes)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(probs)))
    preds = adapted.predict(task.query_x)
    assert preds.dtype == torch.long and torch.equal(preds, probs.argmax(1))
    # easy synthetic templates: every learner must beat chance clearly after adapting
    assert (preds == task.query_y).float().mean() > 1.5 / n_classes
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{name}.adapt() changed the model's {k}"


@pytest.mark.parametrize("name", BUILTIN)
def test_predictions_do_not_depend_on_chunk_size_under_group_norm(name: str) -> None:
    torch.manual_seed(0)
    model = create_model("conv4", in_channels=1, n_way=3, image_size=16, width=8, norm="group")
    learner = create_learner(name, model, n_way=3, inner_lr=0.1, inner_steps=1)
    task = _episode(3, 2, 5, seed=2)
    adapted = learner.adapt(task.support_x, task.support_y)
    whole = adapted.predict_proba(task.query_x)
    adapted.chunk_size = 4
    torch.testing.assert_close(adapted.predict_proba(task.query_x), whole)


def test_protonet_equals_nearest_class_mean_in_embedding_space() -> None:
    model = _conv4().double()
    learner = create_learner("protonet", model)
    task = _episode(4, 3, 5, seed=3)
    with torch.no_grad():
        support = model.features(task.support_x.double())
        query = model.features(task.query_x.double())
    means = torch.stack([support[task.support_y == c].mean(0) for c in range(4)])
    sq_dist = torch.cdist(query, means) ** 2
    adapted = learner.adapt(task.support_x, task.support_y)
    torch.testing.assert_close(adapted.logits(task.query_x), -sq_dist, rtol=1e-9, atol=1e-9)
    assert torch.equal(adapted.predict(task.query_x), sq_dist.argmin(1))
    loss, _ = learner.meta_loss([task])
    expected = torch.nn.functional.cross_entropy(-sq_dist, task.query_y)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-9, atol=1e-9)


def test_maml_with_zero_steps_on_a_new_class_count_is_nearest_class_mean() -> None:
    """Proto-MAML head init: with no inner steps the re-initialised head ranks classes like ProtoNet."""
    model = _conv4(n_way=5).double()
    task = _episode(3, 2, 4, seed=4)
    maml = create_learner("maml", model).adapt(task.support_x, task.support_y, steps=0)
    proto = create_learner("protonet", model).adapt(task.support_x, task.support_y)
    assert torch.equal(maml.predict(task.query_x), proto.predict(task.query_x))


def test_meta_training_steps_raise_query_accuracy_on_learnable_tasks() -> None:
    torch.manual_seed(0)
    # BatchNorm: on these 16 px toy tasks it learns within 25 iterations (checks the learner, not the norm)
    model = create_model("conv4", in_channels=1, n_way=3, image_size=16, width=8, norm="batch")
    learner = create_learner("maml", model, n_way=3, inner_lr=0.4, inner_steps=1)
    opt = torch.optim.Adam(learner.parameters(), lr=1e-2)
    held_out = [_episode(3, 1, 5, seed=1000 + s) for s in range(8)]
    with torch.no_grad():  # validation under no_grad still runs the inner SGD steps
        start = learner.meta_loss(held_out)[1]
    for it in range(25):
        loss, _ = learner.meta_loss([_episode(3, 1, 5, seed=2 * it), _episode(3, 1, 5, seed=2 * it + 1)])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.inference_mode():
        end = learner.meta_loss(held_out)[1]
    assert end["loss"] < 0.6 * start["loss"]
    assert end["accuracy"] >= 0.8 > start["accuracy"]


def test_config_rebuilds_an_equivalent_learner() -> None:
    model = _conv4()
    learner = create_learner("metasgd", model, n_way=5, inner_lr=0.2, inner_steps=3)
    config = learner.config()
    assert config == {"name": "metasgd", "n_way": 5, "inner_lr": 0.2, "inner_steps": 3, "first_order": False}
    rebuilt = learner_from_config(config, _conv4(seed=9))
    rebuilt.load_state_dict(learner.state_dict())
    task = _episode(5, 1, 2, seed=5)
    torch.testing.assert_close(
        rebuilt.adapt(task.support_x, task.support_y).predict_proba(task.query_x),
        learner.adapt(task.support_x, task.support_y).predict_proba(task.query_x),
    )


def test_meta_loss_follows_the_model_dtype() -> None:
    learner = create_learner("maml", _conv4().double())
    loss, _ = learner.meta_loss([_episode(5, 1, 2, seed=6)])  # float32 task, float64 model
    assert loss.dtype == torch.float64


# -- bad input -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILTIN)
def test_adapt_rejects_bad_support_sets_with_clear_messages(name: str) -> None:
    learner = create_learner(name, _conv4())
    x = torch.randn(4, 1, 16, 16)
    with pytest.raises(ValueError, match="support set is empty"):
        learner.adapt(x[:0], torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have no example"):
        learner.adapt(x, torch.tensor([0, 2, 2, 0]))
    with pytest.raises(ValueError, match="single class"):
        learner.adapt(x, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        learner.adapt(x, torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="integer class indices"):
        learner.adapt(x, torch.tensor([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(B, C, H, W\)"):
        learner.adapt(x[:, 0], torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="expects 1-channel images, got 3"):
        learner.adapt(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="expects 16x16 images, got 20x20"):
        learner.adapt(torch.randn(4, 1, 20, 20), torch.tensor([0, 1, 0, 1]))


def test_predict_rejects_wrong_query_shapes() -> None:
    learner = create_learner("anil", _conv4())
    adapted = learner.adapt(torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="expects 16x16 images"):
        adapted.predict(torch.randn(2, 1, 28, 28))
    with pytest.raises(ValueError, match="no query images"):
        adapted.predict(torch.randn(0, 1, 16, 16))


def test_task_and_meta_loss_reject_inconsistent_episodes() -> None:
    sx, sy = torch.randn(5, 1, 16, 16), torch.arange(5)
    with pytest.raises(ValueError, match="same \\(C, H, W\\)"):
        Task(sx, sy, torch.randn(5, 1, 8, 8), sy)
    with pytest.raises(ValueError, match="query has 5 images but 4 labels"):
        Task(sx, sy, sx, sy[:4])
    learner = create_learner("maml", _conv4(), n_way=5)
    with pytest.raises(ValueError, match="built for 5-way tasks but got a 3-way task"):
        learner.meta_loss([_episode(3, 1, 1, seed=0)])
    with pytest.raises(ValueError, match="at least one task"):
        learner.meta_loss([])
