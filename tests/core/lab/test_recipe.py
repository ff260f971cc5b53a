"""The meta-training recipe's episode rules on a small real pool (real training steps, tiny images)."""

from __future__ import annotations

import pytest
import torch

from core.lab.recipe import Recipe, build, class_groups, train


def _pool() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    pool = {}
    for source, classes in (("three", 3), ("two", 2)):
        for c in range(classes):
            base = torch.randint(0, 256, (1, 1, 16, 16), generator=g)
            noise = torch.randint(-20, 21, (8, 1, 16, 16), generator=g)
            pool[f"{source}/c{c}"] = (base + noise).clamp(0, 255).to(torch.uint8)
    return pool


def _recipe(**kw: object) -> Recipe:
    base = dict(
        backbone="conv4",
        backbone_options={"width": 4},
        learner="fomaml",
        learner_options={"inner_lr": 0.1, "inner_steps": 1},
        image_size=16,
        channels=1,
        iterations=6,
        meta_batch=2,
        max_ways=3,
        shots=(1,),
        queries=2,
        seed=0,
    )
    return Recipe(**{**base, **kw})  # type: ignore[arg-type]


def test_groups_are_sources() -> None:
    assert class_groups(_pool()) == {
        "three": ["three/c0", "three/c1", "three/c2"],
        "two": ["two/c0", "two/c1"],
    }


def test_fixed_ways_lets_a_fixed_head_learner_train_on_mixed_sources() -> None:
    pool = _pool()
    # 2..3-way episodes: the 2-class source gives a 2-way task to a 3-way MAML head, which is refused
    with pytest.raises(ValueError, match="3-way tasks but got a 2-way task"):
        recipe = _recipe()
        list(train(recipe, build(recipe), pool, {}, every=1))
    recipe = _recipe(ways=3)
    learner = build(recipe)
    before = [p.detach().clone() for p in learner.parameters()]
    records = list(train(recipe, learner, pool, {}, every=1))
    assert [r.iteration for r in records] == list(range(1, 7))
    assert learner.model.head.out_features == 3
    assert any(not torch.equal(b, p) for b, p in zip(before, learner.parameters(), strict=True))


def test_fixed_ways_larger_than_every_source_is_a_clear_error() -> None:
    recipe = _recipe(ways=4, max_ways=4)
    with pytest.raises(ValueError, match="at least 4 classes"):
        list(train(recipe, build(recipe), _pool(), {}, every=1))
