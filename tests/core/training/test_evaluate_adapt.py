"""evaluate / iter_evaluate (mean accuracy, 95% CI, small classes) and few-shot adaptation to labelled images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core.config import EvalConfig, TrainConfig
from core.data import DataError, ImageFolderDataset
from core.imaging import Preprocess
from core.storage.checkpoint import load_checkpoint, save_checkpoint
from core.training import (
    AdaptProgress,
    CancelToken,
    EvalProgress,
    adapt_examples,
    build_learner,
    evaluate,
    iter_evaluate,
)


@pytest.fixture(scope="module")
def separable() -> ImageFolderDataset:
    """Six classes of clearly different constant images: a ProtoNet with any features separates them."""
    g = torch.Generator().manual_seed(0)
    images = [
        torch.full((8, 1, 28, 28), c / 5.0) + 0.01 * torch.randn(8, 1, 28, 28, generator=g) for c in range(6)
    ]
    images[5] = images[5][:3]  # a small class: 1 support + 2 queries
    return ImageFolderDataset([f"k{c}" for c in range(6)], images, Preprocess(28, 1))


def proto() -> torch.nn.Module:
    return build_learner(TrainConfig(algo="protonet", width=8, ways=3, device="cpu"))


def test_progress_per_episode_and_result_with_ci_formula(separable: ImageFolderDataset) -> None:
    records = list(
        iter_evaluate(proto(), separable, EvalConfig(ways=3, shots=1, queries=4, episodes=6, seed=2))
    )
    assert [r.episode for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(r, EvalProgress) for r in records) and records[-1].result is not None
    assert all(r.result is None for r in records[:-1])
    res = records[-1].result
    assert res.episodes == 6 and res.ways == 3 and res.shots == 1 and 0.0 <= res.accuracy <= 1.0
    assert res.ci95 >= 0 and res.accuracy == pytest.approx(records[-1].accuracy)


def test_ci_is_1_96_std_over_sqrt_n_of_episode_accuracies(separable: ImageFolderDataset) -> None:
    # five classes with distinct constant levels: ProtoNet is exactly right on every episode -> CI 0
    res = evaluate(
        proto(), separable, EvalConfig(ways=5, shots=1, queries=2, episodes=5, seed=0), class_ids=range(5)
    )
    assert res.accuracy == 1.0 and res.ci95 == 0.0


def test_small_classes_join_with_fewer_queries_and_tiny_ones_are_skipped() -> None:
    imgs = [torch.full((n, 1, 28, 28), c / 4.0) for c, n in enumerate([2, 20, 20, 1])]
    ds = ImageFolderDataset(["two", "a", "b", "one"], imgs, Preprocess(28, 1))
    res = evaluate(proto(), ds, EvalConfig(ways=3, shots=1, queries=15, episodes=3))
    assert res.skipped_classes == ("one",) and res.episodes == 3
    with pytest.raises(DataError, match="'one' \\(1\\)"):
        evaluate(proto(), ds, EvalConfig(ways=4, shots=1, queries=15, episodes=1))


def test_cancel_stops_evaluation_with_a_partial_result(separable: ImageFolderDataset) -> None:
    cancel = CancelToken()
    gen = iter_evaluate(proto(), separable, EvalConfig(ways=3, episodes=1000), cancel=cancel)
    next(gen)
    cancel.cancel()
    last = list(gen)[-1]
    assert last.result is not None and last.result.cancelled and last.result.episodes == 1


def test_adapt_examples_yields_progress_and_returns_a_classifier_that_saves(
    separable: ImageFolderDataset, tmp_path: Path
) -> None:
    base = tmp_path / "base.pt"
    learner = build_learner(TrainConfig(algo="maml", width=8, ways=3, device="cpu"))
    save_checkpoint(base, learner, preprocess=Preprocess(28, 1), class_names=[], provenance={})
    rng = np.random.default_rng(0)
    examples = [
        (np.clip(level + rng.normal(0, 3, (40, 40)), 0, 255).astype(np.uint8), name)
        for name, level in [("ok", 30), ("scratch", 220)]
        for _ in range(3)
    ]
    gen = adapt_examples(base, examples, steps=5)
    records: list[AdaptProgress] = []
    while True:
        try:
            records.append(next(gen))
        except StopIteration as stop:
            adapted = stop.value
            break
    assert [r.step for r in records] == [0, 0, 1, 2, 3, 4, 5]  # start, loss after each of the 5 steps
    assert records[0].loss is None and all(r.loss is not None and r.loss >= 0 for r in records[1:])
    assert records[-1].loss <= records[1].loss + 1e-6  # adaptation never raises the support loss here
    assert adapted.class_names == ["ok", "scratch"]
    names, probs = adapted.predict_images([img for img, _ in examples])
    assert names == [lab for _, lab in examples]
    assert torch.allclose(probs.sum(1), torch.ones(len(examples)))
    out = tmp_path / "adapted.pt"
    adapted.save(out, {"note": "x"})
    reloaded = load_checkpoint(out)
    assert reloaded.class_names == ["ok", "scratch"] and reloaded.adapt_steps == 5
    x = Preprocess(28, 1).batch([img for img, _ in examples])
    assert torch.equal(reloaded.adapted().predict(x), adapted.classifier.predict(x))


def test_cancel_stops_adaptation_between_steps(tmp_path: Path) -> None:
    base = tmp_path / "m.pt"
    learner = build_learner(TrainConfig(algo="maml", width=8, ways=3, device="cpu"))
    save_checkpoint(base, learner, preprocess=Preprocess(28, 1), class_names=[], provenance={})
    rng = np.random.default_rng(1)
    examples = [(rng.integers(0, 255, (28, 28), dtype=np.uint8), lab) for lab in ("a", "b", "a", "b")]
    cancel = CancelToken()
    gen = adapt_examples(base, examples, steps=10_000, cancel=cancel)
    next(gen)
    assert next(gen).step == 0
    cancel.cancel()
    steps_seen = [r.step for r in gen]
    assert len(steps_seen) <= 2  # at most the step already running when cancel was set


def test_adapt_needs_two_classes(tmp_path: Path) -> None:
    base = tmp_path / "b.pt"
    save_checkpoint(base, proto(), preprocess=Preprocess(28, 1), class_names=[], provenance={})
    img = np.zeros((28, 28), np.uint8)
    with pytest.raises(ValueError, match="at least two classes"):
        next(adapt_examples(base, [(img, "ok"), (img, "ok")]))


def test_eval_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="episodes must be positive"):
        EvalConfig(episodes=0)
    assert math.isfinite(EvalConfig().queries)


def test_the_confidence_interval_uses_the_sample_standard_deviation() -> None:
    from core.training.evaluate import mean_ci95

    mean, ci = mean_ci95([0.0, 1.0])
    assert mean == 0.5
    assert abs(ci - 1.96 * (0.5**0.5) / (2**0.5)) < 1e-12  # sd with ddof=1 is sqrt(0.5)
    assert mean_ci95([0.7]) == (0.7, 0.0)
