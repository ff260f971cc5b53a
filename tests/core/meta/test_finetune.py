"""The fine-tuned cosine head: prototype start, real steps with early stopping, same numbers on embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.camera.synthetic import DEFECT_CLASSES, render_part
from core.config import EvalConfig
from core.data import ImageFolderDataset
from core.imaging.preprocess import Preprocess
from core.meta import create_learner
from core.meta.finetune import fit_head, fit_heads
from core.models import create_model
from core.models.efficientnet_lite import LITE_MEAN, LITE_STD
from core.training.evaluate import evaluate


def _blobs(
    n_classes: int = 3, per_class: int = 6, dim: int = 16, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=g) * 2
    x = torch.cat([c + torch.randn(per_class, dim, generator=g) for c in centres])
    return x, torch.arange(n_classes).repeat_interleave(per_class)


def test_zero_steps_is_the_cosine_nearest_class_mean() -> None:
    x, y = _blobs()
    head = fit_head(x[None], y, 3, steps=0)
    protos = torch.stack([x[y == k].mean(0) for k in range(3)])
    expected = (F.normalize(x, dim=1) @ F.normalize(protos, dim=1).t()).argmax(1)
    assert torch.equal(head.logits(x).argmax(1), expected)


def test_steps_lower_the_support_loss_and_are_reported_one_by_one() -> None:
    x, y = _blobs(seed=1)
    seen: list[tuple[int, float]] = []
    head = fit_head(
        x[None], y, 3, steps=30, patience=100, on_step=lambda s, loss: seen.append((s, loss)) and False
    )
    assert [s for s, _ in seen] == list(range(1, 31))
    assert seen[-1][1] < seen[0][1]
    start = F.cross_entropy(fit_head(x[None], y, 3, steps=0).logits(x), y)
    assert F.cross_entropy(head.logits(x), y) < start


def test_a_callback_returning_true_stops_and_a_flat_loss_stops_early() -> None:
    x, y = _blobs(seed=2)
    seen: list[int] = []
    fit_head(x[None], y, 3, steps=50, on_step=lambda s, _loss: seen.append(s) or s == 3)
    assert seen == [1, 2, 3]
    flat: list[int] = []
    fit_head(x[None], y, 3, steps=500, lr=1e-9, patience=5, on_step=lambda s, _loss: flat.append(s) and False)
    assert len(flat) < 500


def _torch_adam_head(
    feats: torch.Tensor, labels: torch.Tensor, n: int, steps: int, patience: int
) -> tuple[torch.Tensor, torch.Tensor, float, int]:
    """The head fit written the plain way, with ``torch.optim.Adam``: the reference for the batched one."""
    protos = torch.stack([feats.mean(0)[labels == k].mean(0) for k in range(n)])
    x = F.normalize(feats.reshape(-1, feats.shape[-1]), dim=1)
    y = labels.repeat(feats.shape[0])
    weight, bias = torch.nn.Parameter(protos.clone()), torch.nn.Parameter(torch.zeros(n))
    log_scale = torch.nn.Parameter(torch.tensor(float(np.log(10.0))))
    opt = torch.optim.Adam([weight, bias, log_scale], lr=0.01)
    best, stale, taken = float("inf"), 0, 0
    for _ in range(steps):
        loss = F.cross_entropy(log_scale.exp() * (x @ F.normalize(weight, dim=1).t()) + bias, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        taken += 1
        value = float(loss.detach())
        stale = 0 if value < best - 1e-4 else stale + 1
        best = min(best, value)
        if stale >= patience:
            break
    return weight.detach(), bias.detach(), float(log_scale.detach().exp()), taken


def test_heads_fitted_together_equal_each_fitted_alone_with_torch_adam() -> None:
    """Leave-one-out fits one head per left-out example in one batch; each must be the head torch's Adam
    gives on that example's subset, including heads that stop early at different steps."""
    x, y = _blobs(n_classes=3, per_class=4, dim=12, seed=5)
    feats = torch.stack([x, x.flip(1)])  # two views
    n_ex = len(y)
    keep = ~torch.eye(n_ex, dtype=torch.bool)
    heads = fit_heads(feats, y, 3, keep, steps=60, patience=4)
    stopped_at = set()
    for p, head in enumerate(heads):
        w, b, scale, taken = _torch_adam_head(feats[:, keep[p]], y[keep[p]], 3, steps=60, patience=4)
        stopped_at.add(taken)
        torch.testing.assert_close(head.weight, w, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(head.bias, b, atol=1e-4, rtol=1e-4)
        assert head.scale == pytest.approx(scale, rel=1e-4)
    assert len(stopped_at) > 1, "the data should make heads stop at different steps (else the test is weak)"
    assert fit_head(feats, y, 3, steps=60, patience=4).weight.shape == (3, 12)


def test_heads_fitted_on_the_used_dimensions_equal_heads_fitted_on_masked_features() -> None:
    """A mask fits the heads on the dimensions it keeps only (what a task that leaves the optional dimensions
    out costs): the heads must be those fitted on the features with the other dimensions zeroed, with zero
    weight there and the mask carried to every verdict."""
    x, y = _blobs(n_classes=3, per_class=4, dim=12, seed=5)
    feats = torch.stack([x, x.flip(1)])
    mask = (torch.arange(12) % 3 != 0).to(feats.dtype)  # 8 of 12 dimensions used
    keep = ~torch.eye(len(y), dtype=torch.bool)
    narrow = fit_heads(feats, y, 3, keep, steps=60, patience=4, mask=mask)
    zeroed = fit_heads(feats * mask, y, 3, keep, steps=60, patience=4)
    for a, b in zip(narrow, zeroed, strict=True):
        torch.testing.assert_close(a.weight, b.weight, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.bias, b.bias, atol=1e-5, rtol=1e-5)
        assert a.scale == pytest.approx(b.scale, rel=1e-5)
        assert a.weight.shape == (3, 12) and bool((a.weight[:, mask == 0] == 0).all())
        torch.testing.assert_close(a.mask, mask)
        torch.testing.assert_close(a.logits(x), b.logits(x * mask), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(narrow[0].weight, fit_heads(feats, y, 3, keep, steps=60, patience=4)[0].weight)
    assert fit_head(feats, y, 3, steps=5, mask=mask).mask is not None


def test_heads_need_every_class_and_a_matching_mask() -> None:
    x, y = _blobs()
    with pytest.raises(ValueError, match="every class"):
        fit_heads(x[None], y, 3, (y != 0)[None], steps=5)
    with pytest.raises(ValueError, match="does not match"):
        fit_heads(x[None], y, 3, torch.ones(1, 3, dtype=torch.bool), steps=5)
    with pytest.raises(ValueError, match="feature dimensions"):
        fit_heads(x[None], y, 3, torch.ones(1, len(y), dtype=torch.bool), steps=5, mask=torch.ones(3))


def test_every_view_counts_in_the_fit() -> None:
    x, y = _blobs(seed=3)
    one = fit_head(x[None], y, 3, steps=0)
    two = fit_head(torch.stack([x, -x]), y, 3, steps=0)  # prototypes average the views
    assert not torch.allclose(one.weight, two.weight)


@pytest.fixture(scope="module")
def synthetic_parts() -> ImageFolderDataset:
    rng = np.random.default_rng(5)
    pre = Preprocess(image_size=64, channels=3, mean=LITE_MEAN, std=LITE_STD)
    examples = [
        (render_part(rng, c, variant="copper_disc", size=64)[0], c)
        for c in DEFECT_CLASSES[:3]
        for _ in range(5)
    ]
    return ImageFolderDataset.from_arrays(examples, pre)


class _PerEpisode(torch.nn.Module):
    """The same learner seen without its embedding shortcut: evaluation must adapt on images per episode."""

    def __init__(self, learner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = learner

    def adapt(self, *args: object, **kwargs: object) -> object:
        return self.inner.adapt(*args, **kwargs)


def test_evaluation_on_embeddings_gives_the_numbers_of_adapting_on_images(
    synthetic_parts: ImageFolderDataset,
) -> None:
    model = create_model("efficientnet_lite0", in_channels=3, n_way=3, stages=[6, 8], pooling=["max"])
    learner = create_learner("finetune", model, n_way=3, inner_steps=5, views=["identity", "vflip"]).eval()
    cfg = EvalConfig(ways=3, shots=2, queries=3, episodes=4, seed=7)
    fast = evaluate(learner, synthetic_parts, cfg)
    slow = evaluate(_PerEpisode(learner), synthetic_parts, cfg)
    assert fast.episodes == slow.episodes == 4
    assert fast.accuracy == pytest.approx(slow.accuracy, abs=1e-6)


def test_adapt_gives_probabilities_for_any_number_of_classes(synthetic_parts: ImageFolderDataset) -> None:
    model = create_model("efficientnet_lite0", in_channels=3, n_way=5, stages=[8], pooling=["max"])
    learner = create_learner("finetune", model, n_way=5, inner_steps=3)
    x = torch.cat(synthetic_parts.images)
    y = torch.arange(3).repeat_interleave(5)
    probs = learner.adapt(x, y).predict_proba(x)
    assert probs.shape == (15, 3)
    torch.testing.assert_close(probs.sum(1), torch.ones(15))


def test_unknown_views_and_bad_options_are_clear_errors() -> None:
    model = create_model("efficientnet_lite0", in_channels=3, stages=[8], pooling=["max"])
    with pytest.raises(ValueError, match="views"):
        create_learner("finetune", model, views=["sideways"])
    with pytest.raises(ValueError, match="inner_steps"):
        create_learner("finetune", model, inner_steps=-1)


def test_embeddings_warmed_when_labelled_are_reused_by_adapt_with_the_same_result(
    synthetic_parts: ImageFolderDataset,
) -> None:
    model = create_model("efficientnet_lite0", in_channels=3, n_way=3, stages=[6], pooling=["max"])
    learner = create_learner("finetune", model, n_way=3, inner_steps=5).eval()
    x = torch.cat(synthetic_parts.images)
    y = torch.arange(3).repeat_interleave(5)
    cold = learner.embed_views(x)
    for i in range(len(x)):  # one part labelled at a time
        learner.warm(x[i : i + 1])
    assert learner.cache.misses == len(x) * len(learner.views) and learner.cache.hits == 0
    torch.testing.assert_close(learner.embed_views(x, cached=True), cold)
    adapted = learner.adapt(x, y)
    assert learner.cache.misses == len(x) * len(learner.views)  # adapt embedded nothing again
    uncached = create_learner("finetune", model, n_way=3, inner_steps=5).eval()
    torch.testing.assert_close(adapted.predict_proba(x), uncached.adapt(x, y).predict_proba(x))
    # the support loss comes from the embeddings already made, and equals scoring the images afresh
    assert adapted.support_logits is not None
    torch.testing.assert_close(adapted.support_logits, adapted.logits(x), rtol=1e-4, atol=1e-4)


def test_a_changed_image_is_embedded_afresh_and_training_empties_the_cache(
    synthetic_parts: ImageFolderDataset,
) -> None:
    model = create_model("efficientnet_lite0", in_channels=3, n_way=3, stages=[6], pooling=["max"])
    learner = create_learner("finetune", model, n_way=3, views=["identity"]).eval()
    x = torch.cat(synthetic_parts.images)[:2]
    learner.warm(x)
    changed = x.clone()
    changed[1, :, :8] += 0.5
    out = learner.embed_views(changed, cached=True)
    assert learner.cache.misses == 3  # the first image was known, the changed one was not
    torch.testing.assert_close(out, learner.embed_views(changed))
    assert len(learner.cache) == 3
    learner.train()
    assert len(learner.cache) == 0


class _FlatModel(torch.nn.Module):
    """Embedding = the input's pixels; the last ``n_optional`` of them are the model's optional dimensions."""

    def __init__(self, dim: int, n_optional: int) -> None:
        super().__init__()
        self.features = torch.nn.Flatten()
        self.head = torch.nn.Linear(dim, 2)
        self.optional_features = torch.arange(dim) >= dim - n_optional


def _split_blobs(informative: str, per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes over 8 core + 8 optional dimensions; only the ``informative`` half tells them apart."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(3).repeat_interleave(per_class)
    signal = (torch.eye(3, 8) * 6)[y] + torch.randn(len(y), 8, generator=g) * 0.5
    noise = torch.randn(len(y), 8, generator=g) * 8
    halves = (signal, noise) if informative == "core" else (noise, signal)
    return torch.cat(halves, 1), y


@pytest.mark.parametrize("informative", ["core", "optional"])
def test_the_support_set_decides_whether_the_optional_dimensions_count(informative: str) -> None:
    from core.meta.finetune import use_optional

    x, y = _split_blobs(informative, per_class=4)
    learner = create_learner("finetune", _FlatModel(16, 8), views=["identity"], inner_steps=20).eval()
    optional = learner.model.optional_features
    assert use_optional(x[None], y, optional, 10.0) == (informative == "optional")
    head = learner.adapt_embedded(x[None], y)
    if informative == "optional":
        assert head.mask is None
        return
    # left out: the optional dimensions cannot move a query's logits
    assert torch.equal(head.mask, (~optional).float())
    moved = x.clone()
    moved[:, 8:] = torch.randn(len(x), 8) * 50
    torch.testing.assert_close(head.logits(moved), head.logits(x))
    assert (head.logits(x).argmax(1) == y).float().mean() == 1.0
    # leave-one-out judges each example with the choice adapt made (with every dimension: 3 of 12 right)
    probs = learner.leave_one_out(x.view(len(x), 1, 1, 16), y, steps=0)
    assert probs is not None and (probs.argmax(1) == y).float().mean() == 1.0


def _one_shot(optional_alike: bool) -> torch.Tensor:
    """One example each of four classes over 8 core + 8 optional dimensions: each half is a shared vector plus
    a class's own; the class's own part is small in the half that makes the classes look alike."""
    g = torch.Generator().manual_seed(0)
    shared = torch.randn(1, 16, generator=g)
    own = torch.randn(4, 16, generator=g)
    small = slice(8, 16) if optional_alike else slice(0, 8)
    own[:, small] *= 0.1
    return shared + own


@pytest.mark.parametrize("optional_alike", [False, True])
def test_with_one_example_per_class_the_optional_dimensions_count_when_they_set_classes_apart(
    optional_alike: bool,
) -> None:
    from core.meta.finetune import ONE_SHOT_GAP, similarity_gap, use_optional

    x, y = _one_shot(optional_alike), torch.arange(4)
    learner = create_learner("finetune", _FlatModel(16, 8), views=["identity"], inner_steps=5).eval()
    optional = learner.model.optional_features
    gap = similarity_gap(x[None], y, optional)
    # the half with small class-own parts is the one whose class means are alike
    assert (gap < 0) if optional_alike else (gap >= ONE_SHOT_GAP)
    assert use_optional(x[None], y, optional, 10.0) == (not optional_alike)
    assert (learner.adapt_embedded(x[None], y).mask is None) == (not optional_alike)


def test_one_class_alone_leaves_the_optional_dimensions_out() -> None:
    from core.meta.finetune import similarity_gap, use_optional

    x = _one_shot(False)[:1]
    optional = torch.arange(16) >= 8
    assert math.isnan(similarity_gap(x[None], torch.zeros(1, dtype=torch.long), optional))
    assert not use_optional(x[None], torch.zeros(1, dtype=torch.long), optional, 10.0)


def test_heads_fitted_with_a_scaling_mask_equal_heads_fitted_on_scaled_features() -> None:
    """A mask may scale dimensions as well as drop them (a task's chosen part weights): the heads are those
    fitted on the features multiplied by it, and carry it to every verdict."""
    x, y = _blobs(n_classes=3, per_class=4, dim=12, seed=7)
    feats = torch.stack([x, x.flip(1)])
    mask = torch.tensor([0.0, 1.0, 2.5, 0.4] * 3)
    keep = ~torch.eye(len(y), dtype=torch.bool)
    narrow = fit_heads(feats, y, 3, keep, steps=40, patience=4, mask=mask)
    scaled = fit_heads(feats * mask, y, 3, keep, steps=40, patience=4)
    for a, b in zip(narrow, scaled, strict=True):
        torch.testing.assert_close(a.weight, b.weight, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.logits(x), b.logits(x * mask), atol=1e-5, rtol=1e-5)


class _PartsModel(torch.nn.Module):
    """Embedding = the input's 16 pixels, in two parts of 8 weighted (1.0, 0.5) as a fused model's."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Flatten()
        self.head = torch.nn.Linear(16, 2)
        self.feature_parts = torch.arange(16) // 8
        self.part_weights = (1.0, 0.5)


@pytest.mark.parametrize("informative", ["core", "optional"])
def test_the_support_set_chooses_the_part_weights_that_tell_it_apart(informative: str) -> None:
    """Part 1 (down-weighted by the model) carries the classes: the leave-one-out takes the alternative that
    weights it up, and the head then tells queries apart; part 0 carries them: the model's own weights stay.
    With one example of a class there is no leave-one-out: the model's own weights."""
    x, y = _split_blobs(informative, per_class=4)
    # moderate noise, so that the weighting decides and does not merely help
    x = torch.cat([x[:, :8] * (0.35 if informative == "optional" else 1.0), x[:, 8:]], 1)
    learner = create_learner(
        "finetune", _PartsModel(), views=["identity"], inner_steps=20, part_weights=[[1.0, 2.0]]
    ).eval()
    assert learner.hyper()["part_weights"] == [[1.0, 2.0]]
    head = learner.adapt_embedded(x[None], y)
    if informative == "core":
        assert head.mask is None
    else:
        torch.testing.assert_close(head.mask, torch.tensor([1.0] * 8 + [4.0] * 8))
        assert (head.logits(x).argmax(1) == y).float().mean() == 1.0
    one_each = torch.tensor([0, 4, 8])
    assert learner.adapt_embedded(x[None, one_each], y[one_each]).mask is None


def test_part_weights_need_a_model_of_parts_and_one_positive_weight_per_part() -> None:
    with pytest.raises(ValueError, match="made of parts"):
        create_learner("finetune", _FlatModel(16, 8), part_weights=[[1.0, 1.0]])
    for bad in ([[1.0]], [[1.0, 0.0]], [[1.0, 1.0, 1.0]]):
        with pytest.raises(ValueError, match="one per part"):
            create_learner("finetune", _PartsModel(), part_weights=bad)
    assert "part_weights" not in create_learner("finetune", _PartsModel()).hyper()
