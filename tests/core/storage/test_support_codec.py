"""Adapted model files keep their support set as 8-bit pixels when that loses nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.imaging.preprocess import Preprocess
from core.meta import create_learner
from core.models import create_model
from core.storage.checkpoint import load_checkpoint, save_checkpoint
from core.storage.support_codec import pack_support, unpack_support

PREP = Preprocess(24, 3, (0.498, 0.45, 0.4), (0.502, 0.22, 0.3))


def _prepared(n: int = 6, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, size=(31, 37, 3), dtype=np.uint8) for _ in range(n)]
    return PREP.batch(images)


def test_prepared_8bit_images_pack_to_pixels_and_unpack_bit_for_bit() -> None:
    x = _prepared()
    packed = pack_support(x, PREP)
    assert packed.dtype == torch.uint8 and packed.shape == x.shape
    assert torch.equal(unpack_support(packed, PREP), x)


def test_anything_else_stays_float() -> None:
    x = _prepared() + 1e-3  # not the normalisation of any 8-bit pixel
    assert torch.equal(pack_support(x, PREP), x)
    wrong_channels = Preprocess(24, 1, (0.5,), (0.5,))
    assert pack_support(_prepared(), wrong_channels).dtype == torch.float32


def test_an_adapted_model_file_is_smaller_and_readapts_to_the_same_support(tmp_path: Path) -> None:
    model = create_model("conv4", in_channels=3, n_way=3, image_size=24, width=8)
    learner = create_learner("protonet", model, n_way=3)
    x, y = _prepared(12), torch.arange(3).repeat(4)
    packed_path, float_path = tmp_path / "a.pt", tmp_path / "b.pt"
    save_checkpoint(
        packed_path, learner, preprocess=PREP, class_names=list("abc"), provenance={}, support=(x, y)
    )
    save_checkpoint(
        float_path, learner, preprocess=PREP, class_names=list("abc"), provenance={}, support=(x + 1e-3, y)
    )
    assert packed_path.stat().st_size < float_path.stat().st_size
    raw = torch.load(packed_path, weights_only=True)
    assert raw["support_x"].dtype == torch.uint8 and raw["format_version"] == 2
    ck = load_checkpoint(packed_path)
    assert ck.support_x is not None and torch.equal(ck.support_x, x)
    torch.testing.assert_close(ck.adapted().predict_proba(x), learner.adapt(x, y).predict_proba(x))
