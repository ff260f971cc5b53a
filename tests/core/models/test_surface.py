"""Surface backbones: shapes at any size, grey/RGB, per-image standardisation, config round trip, batch independence."""

from __future__ import annotations

import pytest
import torch

import core.models.surface  # noqa: F401  (registers "surface" / "surface_fused")
from core.models import create_model

NAMES = ("surface", "surface_fused")


def _model(name: str, **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, n_way=6, image_size=64, **kw).eval()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("channels", "size"), [(1, 64), (3, 64), (1, 48), (3, 100)])
def test_shapes_at_any_input_size(name: str, channels: int, size: int) -> None:
    model = _model(name, in_channels=channels)
    x = torch.rand(2, channels, size, size)
    feats = model.features(x)
    assert feats.shape == (2, model.embedding_dim)
    assert model(x).shape == (2, 6)
    assert torch.isfinite(feats).all()


def test_surface_embedding_is_normalised_to_its_scale() -> None:
    model = _model("surface")
    feats = model.features(torch.rand(3, 1, 64, 64))
    assert model.embedding_dim == 64
    torch.testing.assert_close(feats.norm(dim=1), torch.full((3,), 8.0))


def test_fused_embedding_appends_weighted_texture_histograms() -> None:
    model = _model("surface_fused", texture_weight=0.5)
    feats = model.features(torch.rand(2, 1, 64, 64))
    cnn_dim = model.features.cnn.dim
    assert model.embedding_dim == cnn_dim + model.features.histograms.dim
    torch.testing.assert_close(feats[:, cnn_dim:].norm(dim=1), torch.full((2,), 4.0))


def test_surface_is_invariant_to_brightness_and_contrast() -> None:
    model = _model("surface")
    x = torch.rand(2, 1, 64, 64) * 0.5 + 0.2
    with torch.inference_mode():
        base = model.features(x)
        moved = model.features(x * 1.7 - 0.3)
    torch.testing.assert_close(base, moved, atol=1e-3, rtol=1e-3)


def test_rgb_input_is_converted_to_grey() -> None:
    model = _model("surface", in_channels=3)
    grey = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(model.features(grey.expand(-1, 3, -1, -1)), model.features(grey))


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip_rebuilds_the_same_model(name: str) -> None:
    model = _model(name, in_channels=3, widths=[8, 8, 16, 16])
    config = model.config()
    rebuilt = create_model(**config)
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.config() == config
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt.eval()(x), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_single_image_predictions_equal_batch_predictions(name: str) -> None:
    model = _model(name)
    x = torch.rand(5, 1, 64, 64)
    with torch.inference_mode():
        batch = model.features(x)
        single = torch.cat([model.features(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(single, batch, atol=1e-5, rtol=1e-5)


def test_bad_options_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="channels"):
        create_model("surface", in_channels=2)
    with pytest.raises(ValueError, match="width"):
        create_model("surface", widths=[8, 0])
    with pytest.raises(ValueError, match="texture_weight"):
        create_model("surface_fused", texture_weight=-1.0)


def test_fused_from_surface_keeps_the_cnn_embedding() -> None:
    from core.models.surface import fused_from_surface

    surface = _model("surface")
    fused = fused_from_surface(surface, texture_weight=0.0).eval()
    x = torch.rand(3, 1, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(fused.features(x)[:, : surface.embedding_dim], surface.features(x))
    assert fused.config()["texture_weight"] == 0.0


def test_pretrain_runs_saves_and_cancels(tmp_path: object) -> None:
    from pathlib import Path

    from core.storage.checkpoint import load_checkpoint
    from core.training.progress import CancelToken
    from core.training.recipe import TrainingRecipe
    from core.training.recipe_run import (
        build_recipe_learner,
        iter_recipe,
        labelled_classes,
        load_pool,
        save_trained,
    )

    recipe = TrainingRecipe.from_dict({
        "backbone": {"name": "surface", "in_channels": 1, "widths": [8, 8, 8, 8]},
        "learner": {"name": "protonet", "n_way": 6},
        "image_size": 32, "channels": 1, "augment": "geometric",
        "synthetic": {"held_out": ["copper_disc"], "per_class": 2, "render_size": 32},
        "supervised": {"epochs": 2, "batch_size": 16},
    })  # fmt: skip
    pool = load_pool(recipe)
    data = labelled_classes(pool)
    assert data.num_images == 6 * 2 * 5 and len(data.label_names) == 6
    learner = build_recipe_learner(recipe, len(data.label_names))
    records = list(iter_recipe(recipe, learner, pool))
    assert [r.iteration for r in records] == [1, 2] and records[-1].done
    out = Path(str(tmp_path)) / "s.pt"
    save_trained(out, learner, recipe, pool, texture_weight=1.0)
    loaded = load_checkpoint(out)
    assert loaded.learner.model.config()["name"] == "surface_fused"
    assert loaded.provenance["held_out"] == ["copper_disc"]
    token = CancelToken()
    token.cancel()
    last = list(iter_recipe(recipe, build_recipe_learner(recipe, 6), pool, cancel=token))[-1]
    assert last.cancelled and last.done
