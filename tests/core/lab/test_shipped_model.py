"""The shipped model (resources/models/default.pt): loads, adapts to a product variant it never saw, any N-way."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from core.camera.synthetic import DEFECT_CLASSES, render_part
from core.inference import LiveClassifier
from core.storage.checkpoint import LoadedCheckpoint, load_checkpoint
from core.training.adapt import run_adaptation
from core.training.shipped import ModelRecipe, build_shipped_model, state_sha256
from tests.conftest import REPO_ROOT

DEFAULT = REPO_ROOT / "resources" / "models" / "default.pt"
HELD_OUT_VARIANT = "copper_disc"  # never rendered during meta-training (see resources/recipes/surface.json and the provenance)


@pytest.fixture(scope="module")
def shipped() -> LoadedCheckpoint:
    if not DEFAULT.is_file():
        pytest.fail(f"the shipped model {DEFAULT} is missing")
    return load_checkpoint("default")


def _parts(variant: str, per_class: int, seed: int) -> tuple[list[np.ndarray], torch.Tensor]:
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, defect in enumerate(DEFECT_CLASSES):
        for _ in range(per_class):
            images.append(render_part(rng, defect, variant=variant, size=128)[0])
            labels.append(label)
    return images, torch.tensor(labels)


def test_shipped_model_records_how_it_was_made(shipped: LoadedCheckpoint) -> None:
    prov = shipped.provenance
    for key in ("recipe", "data", "seed", "git_commit", "date", "held_out"):
        assert key in prov, f"provenance lacks {key!r}"
    assert HELD_OUT_VARIANT in prov["held_out"]
    assert HELD_OUT_VARIANT not in prov["data"]
    assert DEFAULT.stat().st_size < 8 * 1024 * 1024


def test_shipped_model_is_what_its_recipe_builds(shipped: LoadedCheckpoint, tmp_path: Path) -> None:
    """Issue 9: one command rebuilds the shipped file from the recipe in the repository, bit for bit in weights."""
    recipe_file = REPO_ROOT / "resources" / "recipes" / "default.json"
    prov = shipped.provenance
    assert prov["recipe"] == ModelRecipe.from_json(recipe_file).to_dict()
    assert prov["recipe_sha256"] == hashlib.sha256(recipe_file.read_bytes()).hexdigest()
    assert prov["state_sha256"] == state_sha256(shipped.learner)
    assert prov["pretrained_weights_sha256"] == shipped.learner.model.weights_sha256
    rebuilt = build_shipped_model(recipe_file, tmp_path / "rebuilt.pt")
    assert rebuilt["state_sha256"] == prov["state_sha256"]
    assert rebuilt["init"] == prov["init"]


def test_five_examples_per_class_of_an_unseen_product_variant_reach_95_percent(
    shipped: LoadedCheckpoint,
) -> None:
    """Issue 5 acceptance, through the app's own path (adapt_examples, one part per forward pass)."""
    accuracies = []
    for seed in (11, 21, 31):
        support, sy = _parts(HELD_OUT_VARIANT, 5, seed=seed)
        query, qy = _parts(HELD_OUT_VARIANT, 40, seed=seed + 1)
        examples = [(img, DEFECT_CLASSES[int(y)]) for img, y in zip(support, sy, strict=True)]
        adapted = run_adaptation(shipped, examples)
        live = LiveClassifier(adapted.classifier, adapted.preprocess, adapted.class_names)
        predicted = [v.class_name for v in live.classify(list(range(len(query))), query)]
        truth = [DEFECT_CLASSES[int(y)] for y in qy]
        accuracies.append(float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)])))
    mean = float(np.mean(accuracies))
    assert mean >= 0.95, (
        f"accuracy on the unseen variant {HELD_OUT_VARIANT!r}: {accuracies} (mean {mean:.3f})"
    )


@pytest.mark.parametrize("n_way", [2, 4])
def test_grey_input_of_any_size_and_any_class_count_is_served(shipped: LoadedCheckpoint, n_way: int) -> None:
    images, labels = _parts(HELD_OUT_VARIANT, 3, seed=13)
    keep = labels < n_way
    grey = [img[::2, ::3, 1] for img, k in zip(images, keep, strict=True) if k]  # odd-shaped grey crops
    x = shipped.preprocess.batch(grey)
    probs = shipped.learner.adapt(x, labels[keep]).predict_proba(x)
    assert probs.shape == (int(keep.sum()), n_way)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(probs)))
