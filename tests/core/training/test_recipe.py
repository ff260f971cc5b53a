"""The training recipe: schema and validation, the shipped recipe files, and a real run of each stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.data import ImageFolderDataset
from core.imaging import Preprocess
from core.training.recipe import TrainingRecipe
from core.training.recipe_run import build_recipe_learner, iter_recipe, labelled_classes

RECIPES = Path(__file__).resolve().parents[3] / "resources" / "recipes"


def _pool() -> ImageFolderDataset:
    g = torch.Generator().manual_seed(0)
    names, images = [], []
    for source, classes in (("three", 3), ("two", 2), ("synthetic/disc", 2), ("synthetic/hex", 2)):
        for c in range(classes):
            base = torch.rand(1, 1, 16, 16, generator=g)
            names.append(f"{source}/c{c}")
            images.append((base + 0.08 * torch.randn(8, 1, 16, 16, generator=g)).clamp(0, 1))
    return ImageFolderDataset(names, images, Preprocess(16, 1))


def _recipe(**kw: object) -> TrainingRecipe:
    base: dict[str, object] = {
        "backbone": {"name": "conv4", "width": 4},
        "learner": {"name": "fomaml", "inner_lr": 0.1, "inner_steps": 1},
        "image_size": 16, "channels": 1, "synthetic": {"variants": []},
        "episodic": {"steps": 6, "meta_batch": 2, "max_ways": 3, "shots": [1], "queries": 2, "report_every": 1},
        "augment": "surface",
    }  # fmt: skip
    return TrainingRecipe.from_dict({**base, **kw})


@pytest.mark.parametrize("name", ["surface.json", "texture_fused.json"])
def test_the_repository_recipes_load_and_round_trip(name: str) -> None:
    recipe = TrainingRecipe.from_json(RECIPES / name)
    assert TrainingRecipe.from_dict(recipe.to_dict()) == recipe
    assert recipe.held_out_names()[0] == "copper_disc"


def test_bad_recipes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown recipe key\(s\) \['itrations'\]"):
        _recipe(itrations=3)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['step'\] in the recipe's episodic"):
        _recipe(episodic={"step": 3})
    with pytest.raises(ValueError, match="exactly one of 'epochs' and 'steps'"):
        _recipe(supervised={"epochs": 1, "steps": 1})
    with pytest.raises(ValueError, match=r"needs supervised\.head 'linear'"):
        _recipe(supervised={"epochs": 1})
    with pytest.raises(ValueError, match="trains nothing"):
        _recipe(episodic=None)
    with pytest.raises(ValueError, match="unknown synthetic variants"):
        _recipe(synthetic={"held_out": ["nope"]}).synthetic.training_variants()  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=r"freezes 'features\.texture'"):
        build_recipe_learner(_recipe(freeze=["features.texture"]))


def test_fixed_ways_lets_a_fixed_head_learner_train_on_mixed_sources() -> None:
    pool = _pool()
    recipe = _recipe()  # 2..3-way episodes: a 2-class source gives a 2-way task to a 3-way MAML head
    with pytest.raises(ValueError, match="3-way tasks but got a 2-way task"):
        list(iter_recipe(recipe, build_recipe_learner(recipe), pool))
    recipe = _recipe(episodic={"steps": 6, "ways": 3, "shots": [1], "queries": 2, "report_every": 1})
    learner = build_recipe_learner(recipe)
    before = [p.detach().clone() for p in learner.parameters()]
    records = list(iter_recipe(recipe, learner, pool))
    assert [r.iteration for r in records] == list(range(1, 7)) and {r.stage for r in records} == {"episodic"}
    assert learner.model.head.out_features == 3
    assert any(not torch.equal(b, p) for b, p in zip(before, learner.parameters(), strict=True))


def test_supervised_then_episodic_with_held_out_scores() -> None:
    pool = _pool()
    assert labelled_classes(pool).label_names == [
        "three/c0",
        "three/c1",
        "three/c2",
        "two/c0",
        "two/c1",
        "c0",
        "c1",
    ]
    recipe = _recipe(
        learner={"name": "protonet"},
        supervised={"steps": 4, "batch_size": 8, "head": "linear", "report_every": 2, "lr_floor": 1.0},
        episodic={"steps": 2, "shots": [1, 2], "queries": 2, "report_every": 1},
    )  # fmt: skip
    learner = build_recipe_learner(recipe)
    held = {"three": ImageFolderDataset(pool.class_names[:3], pool.images[:3], pool.preprocess)}
    records = list(iter_recipe(recipe, learner, pool, held))
    assert [(r.stage, r.iteration) for r in records] == [
        ("supervised", 2),
        ("supervised", 4),
        ("episodic", 1),
        ("episodic", 2),
    ]
    assert set(records[1].val_scores) == {"three"} and set(records[-1].val_scores) == {"three"}
    assert records[0].val_scores == {}


def test_the_earlier_formats_are_read_with_the_same_meaning() -> None:
    from dataclasses import replace

    old_lab_recipe = {
        "backbone": "texture_fused", "backbone_options": {"width": 128, "cnn_width": 32, "norm": "group"},
        "learner": "protonet", "learner_options": {}, "image_size": 64, "channels": 3,
        "datasets_dir": "../shared/datasets",
        "data": [{"path": "magnetic_tile.zip", "subdir": "images"}, {"path": "kolektorsdd.zip"}],
        "synthetic_variants": ["default", "brushed_plate", "brass_ring", "cast_hex", "anodized_tab"],
        "synthetic_per_class": 40, "eval_variant": "copper_disc", "eval_data": {"path": "x_sdd.zip"},
        "iterations": 700, "meta_batch": 2, "max_ways": 6, "shots": [1, 5], "queries": 6, "lr": 0.001,
        "augment": True, "seed": 0, "pretrain_iterations": 0, "pretrain_batch": 32, "freeze_texture": True,
    }  # fmt: skip
    old_pretrain_config = {
        "model": {"name": "surface", "in_channels": 1, "widths": [32, 48, 64, 64], "norm": "instance"},
        "image_size": 64, "render_size": 128, "held_out": ["copper_disc"], "per_class": 120, "datasets": [],
        "epochs": 16, "batch_size": 64, "lr": 0.002, "seed": 0, "threads": 1,
    }  # fmt: skip
    for old, name in ((old_lab_recipe, "texture_fused.json"), (old_pretrain_config, "surface.json")):
        current = TrainingRecipe.from_json(RECIPES / name)
        assert TrainingRecipe.from_dict(old) == replace(current, comment="")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['epoch'\] in a pre-training config"):
        TrainingRecipe.from_dict({"model": {"name": "surface"}, "epoch": 3})
