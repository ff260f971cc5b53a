"""The shipped model (resources/models/default.pt): loads, adapts to a product variant it never saw, any N-way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.camera.synthetic import DEFECT_CLASSES, render_part
from core.storage.checkpoint import LoadedCheckpoint, load_checkpoint
from tests.conftest import REPO_ROOT

DEFAULT = REPO_ROOT / "resources" / "models" / "default.pt"
HELD_OUT_VARIANT = "copper_disc"  # never rendered during meta-training (see resources/recipes/default.json)


@pytest.fixture(scope="module")
def shipped() -> LoadedCheckpoint:
    if not DEFAULT.is_file():
        pytest.fail(f"the shipped model {DEFAULT} is missing")
    torch.set_num_threads(2)
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
    for key in ("recipe", "iterations", "seed", "git_commit", "date", "training_classes"):
        assert key in prov, f"provenance lacks {key!r}"
    assert not any(HELD_OUT_VARIANT in name for name in prov["training_classes"])
    assert DEFAULT.stat().st_size < 8 * 1024 * 1024


@pytest.mark.xfail(
    strict=True,
    reason="issue 5 acceptance not met yet: the CPU-trained shipped model reaches far below 95% on an unseen "
    "variant (docs/bench/model.md); strict, so a better model turns this into a failure until the mark goes",
)
def test_five_examples_per_class_of_an_unseen_product_variant_reach_95_percent(
    shipped: LoadedCheckpoint,
) -> None:
    pre = shipped.preprocess
    support, sy = _parts(HELD_OUT_VARIANT, 5, seed=11)
    query, qy = _parts(HELD_OUT_VARIANT, 20, seed=12)
    adapted = shipped.learner.adapt(pre.batch(support), sy)
    accuracy = float((adapted.predict(pre.batch(query)) == qy).float().mean())
    assert accuracy >= 0.95, f"accuracy on the unseen variant {HELD_OUT_VARIANT!r}: {accuracy:.3f}"


@pytest.mark.parametrize("n_way", [2, 4])
def test_grey_input_of_any_size_and_any_class_count_is_served(shipped: LoadedCheckpoint, n_way: int) -> None:
    images, labels = _parts(HELD_OUT_VARIANT, 3, seed=13)
    keep = labels < n_way
    grey = [img[::2, ::3, 1] for img, k in zip(images, keep, strict=True) if k]  # odd-shaped grey crops
    x = shipped.preprocess.batch(grey)
    probs = shipped.learner.adapt(x, labels[keep]).predict_proba(x)
    assert probs.shape == (int(keep.sum()), n_way)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(probs)))
