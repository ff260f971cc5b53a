"""The fused model's per-part input: how each part's copy is resized from the model's one input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.camera.synthetic import render_part
from core.models.fused import PartInput


def _part_input(resize: str) -> PartInput:
    return PartInput((0.0,) * 3, (1.0,) * 3, 64, 1, (0.0,), (1.0,), resize)


def test_bilinear_halving_is_the_two_by_two_average() -> None:
    x = torch.rand(2, 3, 128, 128)
    grey = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    torch.testing.assert_close(_part_input("bilinear")(x), F.avg_pool2d(grey, 2), rtol=0, atol=1e-6)


def test_bilinear_copy_of_an_enlarged_crop_is_close_to_the_crop_shrunk_directly() -> None:
    """A 128 px synthetic-line crop reaches the model enlarged to 224 px: the part's 64 px copy should
    look like the 128 -> 64 copy the part was trained on, which area averaging the enlargement does not give."""
    rng = np.random.default_rng(3)
    errors = {"area": [], "bilinear": []}
    for defect in ("scratch", "dent", "ok"):
        crop = render_part(rng, defect, variant="copper_disc", size=128)[0]
        grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        direct = torch.from_numpy(cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA))
        big = cv2.resize(crop, (224, 224), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        x = torch.from_numpy(big).permute(2, 0, 1)[None]
        for mode in errors:
            errors[mode].append(float((_part_input(mode)(x)[0, 0] - direct).abs().mean()))
    assert np.mean(errors["bilinear"]) < 0.6 * np.mean(errors["area"]), errors


def test_an_unknown_resize_is_refused() -> None:
    with pytest.raises(ValueError, match="resize"):
        _part_input("lanczos")


def test_the_shipped_model_without_its_optional_dimensions_is_the_model_without_covariance() -> None:
    """The covariance groups are optional: leaving them out (the learner's choice on a support set) gives
    the very embedding the fused model has without them; each part is normalised by its core dimensions."""
    from core.models import create_model
    from core.storage.checkpoint import load_checkpoint

    shipped = load_checkpoint("default").learner.model.eval()
    config = shipped.config()
    lite = config["parts"][0]["model"]
    assert lite["covariance"] == [4, 5]
    plain_parts = [{**config["parts"][0], "model": {k: v for k, v in lite.items() if k != "covariance"}}]
    plain = create_model(**{**config, "parts": plain_parts + config["parts"][1:]}).eval()
    plain.features.parts[1].load_state_dict(shipped.features.parts[1].state_dict())
    x = torch.rand(2, 3, 160, 160)
    with torch.inference_mode():
        f, g = shipped.features(x), plain.features(x)
    keep = ~shipped.optional_features
    assert int(keep.sum()) == g.shape[1] < f.shape[1]
    torch.testing.assert_close(F.normalize(f[:, keep], dim=1), F.normalize(g, dim=1), rtol=1e-4, atol=1e-5)


def test_each_dimension_of_the_fused_embedding_knows_its_part_and_the_part_its_weight() -> None:
    """What the learner re-weights per task: part i's dimensions are the i-th block of the embedding."""
    from core.storage.checkpoint import load_checkpoint

    shipped = load_checkpoint("default").learner.model
    widths = [int(p.embedding_dim) for p in shipped.features.parts]
    assert torch.equal(
        shipped.feature_parts, torch.arange(len(widths)).repeat_interleave(torch.tensor(widths))
    )
    assert shipped.part_weights == tuple(float(p["weight"]) for p in shipped.config()["parts"])
