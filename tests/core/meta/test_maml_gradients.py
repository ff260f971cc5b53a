"""The MAML family's meta-gradients equal an independent unrolled-autograd reference and finite differences.

Everything runs in float64 on a tiny explicit network (tests/core/meta/reference.py), with and without
BatchNorm's per-task batch statistics, for 1 and 3 inner steps.
"""

from __future__ import annotations

import pytest
import torch

from core.meta import Task, create_learner
from tests.core.meta import reference as ref

NAMES = {
    "conv_w": "features.0.weight",
    "conv_b": "features.0.bias",
    "bn_g": "features.1.weight",
    "bn_b": "features.1.bias",
    "gn_g": "features.1.weight",
    "gn_b": "features.1.bias",
    "head_w": "head.weight",
    "head_b": "head.bias",
}
N_WAY, LR = 3, 0.3


def _tasks(seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return ref.random_tasks(n_tasks=2, n_way=N_WAY, k_shot=2, q_query=2, seed=seed)


def _learner_grads(name: str, batch_norm: bool | str, steps: int, **hyper: object) -> tuple:
    net = ref.make_net(N_WAY, batch_norm, seed=1)
    weights = ref.weights_of(net)
    learner = create_learner(name, net, n_way=N_WAY, inner_lr=LR, inner_steps=steps, **hyper)
    loss, _ = learner.meta_loss([Task(*t) for t in _tasks()])
    loss.backward()
    return learner, net, weights, loss, ref.grads_of(net)


def _assert_close(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> None:
    assert set(ours) == set(theirs)
    for key in ours:
        assert ours[key] is not None, f"no gradient reached {key}"
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-9, atol=1e-12, msg=f"gradient of {key}")


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("batch_norm", [False, True, "group"], ids=["no-norm", "batchnorm", "groupnorm"])
def test_maml_meta_gradient_equals_unrolled_autograd_reference(steps: int, batch_norm: bool | str) -> None:
    _, _, weights, loss, ours = _learner_grads("maml", batch_norm, steps)
    ref_loss = ref.meta_loss(weights, _tasks(), LR, steps, second_order=True)
    theirs = dict(zip(weights, torch.autograd.grad(ref_loss, list(weights.values())), strict=True))
    torch.testing.assert_close(loss.detach(), ref_loss.detach(), rtol=1e-12, atol=0)
    _assert_close(ours, theirs)
    # Second-order terms matter here: the first-order expression must differ from the true meta-gradient.
    fo_loss = ref.meta_loss(weights, _tasks(), LR, steps, second_order=False)
    fo = torch.autograd.grad(fo_loss, [weights["conv_w"]])[0]
    assert not torch.allclose(fo, ours["conv_w"], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("steps", [1, 3])
def test_maml_conv_bias_meta_gradient_is_exactly_zero_under_batchnorm(steps: int) -> None:
    """Per-task BatchNorm removes the conv bias from the output: its true meta-gradient is 0 (the vmap trap)."""
    _, _, _, _, ours = _learner_grads("maml", True, steps)
    assert ours["conv_b"].abs().max() < 1e-12


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("batch_norm", [False, True, "group"], ids=["no-norm", "batchnorm", "groupnorm"])
def test_maml_meta_gradient_matches_central_finite_differences(steps: int, batch_norm: bool | str) -> None:
    learner, net, _, _, ours = _learner_grads("maml", batch_norm, steps)
    tasks = [Task(*t) for t in _tasks()]
    params = dict(net.named_parameters())
    gen = torch.Generator().manual_seed(7)
    eps = 1e-6
    for _ in range(3):
        direction = {k: torch.randn(p.shape, generator=gen, dtype=p.dtype) for k, p in params.items()}
        with torch.no_grad():
            for k, p in params.items():
                p.add_(eps * direction[k])
        plus = learner.meta_loss(tasks)[0].detach().item()
        with torch.no_grad():
            for k, p in params.items():
                p.sub_(2 * eps * direction[k])
        minus = learner.meta_loss(tasks)[0].detach().item()
        with torch.no_grad():
            for k, p in params.items():
                p.add_(eps * direction[k])
        numeric = (plus - minus) / (2 * eps)
        analytic = sum(float((ours[r] * direction[NAMES[r]]).sum()) for r in ours)
        assert numeric == pytest.approx(analytic, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["no-norm", "batchnorm"])
@pytest.mark.parametrize("name", ["fomaml", "maml-first-order"])
def test_first_order_maml_equals_query_gradient_at_adapted_weights(
    steps: int, batch_norm: bool, name: str
) -> None:
    """FOMAML's meta-gradient is the mean over tasks of dL_query/dtheta' at the adapted weights theta'."""
    if name == "fomaml":
        _, _, weights, _, ours = _learner_grads("fomaml", batch_norm, steps)
    else:
        _, _, weights, _, ours = _learner_grads("maml", batch_norm, steps, first_order=True)
    theirs = {k: torch.zeros_like(v) for k, v in weights.items()}
    tasks = _tasks()
    for sx, sy, qx, qy in tasks:
        fast = {k: v.detach().clone().requires_grad_() for k, v in weights.items()}
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(ref.forward(fast, sx), sy)
            grads = torch.autograd.grad(loss, list(fast.values()))
            fast = {
                k: (v - LR * g).detach().requires_grad_()
                for (k, v), g in zip(fast.items(), grads, strict=True)
            }
        qloss = torch.nn.functional.cross_entropy(ref.forward(fast, qx), qy)
        for k, g in zip(fast, torch.autograd.grad(qloss, list(fast.values())), strict=True):
            theirs[k] += g / len(tasks)
    _assert_close(ours, theirs)


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["no-norm", "batchnorm"])
def test_anil_meta_gradient_equals_head_only_reference(steps: int, batch_norm: bool) -> None:
    _, _, weights, _, ours = _learner_grads("anil", batch_norm, steps)
    ref_loss = ref.meta_loss(weights, _tasks(), LR, steps, second_order=True, head_only=True)
    theirs = dict(zip(weights, torch.autograd.grad(ref_loss, list(weights.values())), strict=True))
    _assert_close(ours, theirs)
    assert ours["conv_w"].abs().max() > 0  # the body still learns, through the head's adaptation


def test_anil_adaptation_leaves_features_unchanged() -> None:
    """ANIL's adapted classifier = reference head SGD on the *unchanged* features; the model is untouched."""
    net = ref.make_net(N_WAY, batch_norm=True, seed=3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    learner = create_learner("anil", net, n_way=N_WAY, inner_lr=LR, inner_steps=2)
    sx, sy, qx, _ = _tasks(seed=5)[0]
    probs = learner.adapt(sx, sy, steps=4).predict_proba(qx)

    w = ref.weights_of(net)
    feats_s, feats_q = ref.features(w, sx).detach(), ref.features(w, qx).detach()
    hw, hb = w["head_w"].detach().requires_grad_(), w["head_b"].detach().requires_grad_()
    for _ in range(4):
        loss = torch.nn.functional.cross_entropy(feats_s @ hw.t() + hb, sy)
        gw, gb = torch.autograd.grad(loss, [hw, hb])
        hw, hb = (hw - LR * gw).detach().requires_grad_(), (hb - LR * gb).detach().requires_grad_()
    expected = (feats_q @ hw.t() + hb).softmax(1)
    torch.testing.assert_close(probs, expected.detach(), rtol=1e-10, atol=1e-12)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), f"adapt() changed the shared model's {k}"


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["no-norm", "batchnorm"])
def test_metasgd_learning_rates_get_the_reference_meta_gradient(steps: int, batch_norm: bool) -> None:
    net = ref.make_net(N_WAY, batch_norm, seed=1)
    weights = ref.weights_of(net)
    learner = create_learner("metasgd", net, n_way=N_WAY, inner_lr=LR, inner_steps=steps)
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():  # distinct per-element rates, so a mix-up of elements would show
        for lr in learner.inner_lrs.values():
            lr.copy_(torch.rand(lr.shape, generator=gen, dtype=lr.dtype) * 0.4 + 0.1)
    lrs = {
        r: learner.inner_lrs[m.replace(".", "__")].detach().clone().requires_grad_()
        for r, m in NAMES.items()
        if r in weights
    }
    loss, _ = learner.meta_loss([Task(*t) for t in _tasks()])
    loss.backward()

    ref_loss = ref.meta_loss(weights, _tasks(), lrs, steps, second_order=True)
    leaves = list(weights.values()) + list(lrs.values())
    grads = torch.autograd.grad(ref_loss, leaves)
    theirs_w = dict(zip(weights, grads[: len(weights)], strict=True))
    theirs_lr = dict(zip(lrs, grads[len(weights) :], strict=True))
    _assert_close(ref.grads_of(net), theirs_w)
    ours_lr = {r: learner.inner_lrs[NAMES[r].replace(".", "__")].grad for r in lrs}
    _assert_close(ours_lr, theirs_lr)
    assert all(g.abs().sum() > 0 for g in ours_lr.values() if g is not None)
    assert any(k.startswith("inner_lrs.") for k in learner.state_dict())


@pytest.mark.parametrize("name", ["maml", "fomaml", "anil", "metasgd", "protonet"])
def test_task_by_task_gradients_equal_one_graph_over_the_meta_batch(name: str) -> None:
    """The bounded-memory path (each task differentiated on its own) gives the one-graph meta-gradient."""
    results = []
    for task_by_task in (True, False):
        net = ref.make_net(N_WAY, batch_norm=True, seed=1)
        hyper = {} if name == "protonet" else {"inner_lr": LR, "inner_steps": 2}
        learner = create_learner(name, net, n_way=N_WAY, **hyper)
        learner.task_by_task = task_by_task
        loss, _ = learner.meta_loss([Task(*t) for t in ref.random_tasks(3, N_WAY, 2, 2, seed=4)])
        (2.5 * loss).backward()  # a scaled loss scales the precomputed gradient too
        results.append({k: p.grad for k, p in learner.named_parameters() if p.grad is not None})
    assert results[0].keys() == results[1].keys() and results[0]
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key], rtol=1e-10, atol=1e-13, msg=key)
