"""The fused oneDNN forward of the EfficientNet-Lite trunk gives the reference forward's numbers, or steps aside."""

from __future__ import annotations

import copy
import threading
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core.models.efficientnet_lite import HEAD_STAGE, LiteTrunk, load_trunk
from core.models.lite_fused import can_fuse
from core.storage.checkpoint import load_checkpoint
from core.training.adapt import run_adaptation

pytestmark = pytest.mark.skipif(
    not can_fuse(load_trunk("lite0")[0], torch.zeros(1, 3, 8, 8)), reason="no oneDNN"
)


@pytest.fixture(scope="module")
def trunk() -> LiteTrunk:
    return load_trunk("lite0")[0]


def _real_images(datasets: Path, per_set: int = 12) -> list[np.ndarray]:
    """Real defect images of two shared sets (RGB steel, grey magnetic tiles of odd sizes)."""
    images = []
    for name in ("x_sdd.zip", "magnetic_tile.zip"):
        with zipfile.ZipFile(datasets / name) as zf:
            files = sorted(n for n in zf.namelist() if n.lower().endswith((".jpg", ".png", ".bmp")))
            files = [n for n in files if "/masks/" not in n]
            for n in files[:: max(1, len(files) // per_set)][:per_set]:
                images.append(cv2.imdecode(np.frombuffer(zf.read(n), np.uint8), cv2.IMREAD_UNCHANGED))
    return images


def test_every_stage_map_matches_the_reference_forward(trunk: LiteTrunk) -> None:
    torch.manual_seed(0)
    for shape in [(1, 3, 224, 224), (3, 3, 97, 131), (2, 3, 160, 160)]:  # odd sizes pad asymmetrically
        x = torch.randn(*shape)
        with torch.inference_mode():
            fused = trunk.stage_maps(x, range(1, HEAD_STAGE + 1))
            ref = trunk.reference_stage_maps(x, range(1, HEAD_STAGE + 1))
        assert fused.keys() == ref.keys()
        for s in ref:
            assert fused[s].shape == ref[s].shape
            scale = float(ref[s].abs().max())
            assert float((fused[s] - ref[s]).abs().max()) <= 5e-5 * max(1.0, scale), (shape, s)
    assert len(trunk.fused) >= 1  # the fused forward served them


def test_the_shipped_model_gives_the_same_logits_fused_and_unfused_on_real_images(datasets_dir: Path) -> None:
    ck = load_checkpoint("default")
    images = _real_images(datasets_dir)
    support = [(im, f"c{i % 3}") for i, im in enumerate(images[:9])]
    adapted = run_adaptation(ck, support, steps=10)
    trunks = [m for m in ck.learner.modules() if isinstance(m, LiteTrunk)]
    assert trunks
    x = adapted.preprocess.batch(images)
    logits = {}
    for fuse in (True, False):
        for t in trunks:
            t.fuse_inference = fuse
        # one image per forward, as the live classifier runs them, and one batch, as the lab's run does
        single = torch.cat([adapted.classifier.logits(x[i : i + 1]) for i in range(len(x))])
        logits[fuse] = (single, adapted.classifier.logits(x))
    for t in trunks:
        t.fuse_inference = True
    for a, b in zip(logits[True], logits[False], strict=True):
        assert float((a - b).abs().max()) < 1e-4
    assert any(len(t.fused) for t in trunks)


def test_changed_weights_are_never_served_from_an_old_plan(trunk: LiteTrunk) -> None:
    t = copy.deepcopy(trunk)
    assert len(t.fused) == 0  # a copy starts without plans (they hold the original's weights)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        before = t.stage_maps(x, [HEAD_STAGE])[HEAD_STAGE]
    # replaced, as torch.func.functional_call swaps adapted weights in (MAML adapts every weight that way)
    head_weight = t._conv_head.weight
    t._conv_head.weight = torch.nn.Parameter(head_weight.detach() * 0.5, requires_grad=False)
    with torch.inference_mode():
        swapped = t.stage_maps(x, [HEAD_STAGE])[HEAD_STAGE]
        swapped_ref = t.reference_stage_maps(x, [HEAD_STAGE])[HEAD_STAGE]
    assert torch.allclose(swapped, swapped_ref, atol=1e-4)
    assert not torch.allclose(swapped, before, atol=1e-3)
    t._conv_head.weight = head_weight
    with torch.inference_mode():
        assert torch.allclose(t.stage_maps(x, [HEAD_STAGE])[HEAD_STAGE], before, atol=1e-6)
    with torch.no_grad():  # edited in place
        t._conv_head.weight.mul_(2.0)
    with torch.inference_mode():
        edited = t.stage_maps(x, [HEAD_STAGE])[HEAD_STAGE]
        edited_ref = t.reference_stage_maps(x, [HEAD_STAGE])[HEAD_STAGE]
    assert torch.allclose(edited, edited_ref, atol=1e-4)
    assert not torch.allclose(edited, before, atol=1e-3)


def test_what_needs_a_gradient_or_another_dtype_takes_the_reference_forward(trunk: LiteTrunk) -> None:
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    assert not can_fuse(trunk, x)
    out = trunk.stage_maps(x, [3])[3]
    out.sum().backward()  # the reference forward is differentiable
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert not can_fuse(trunk, torch.zeros(1, 3, 32, 32, dtype=torch.float64))
    assert can_fuse(trunk, torch.zeros(1, 3, 32, 32))  # no gradient needed, even in grad mode
    plain, _ = load_trunk("lite0", fold=False)
    assert not can_fuse(plain, torch.zeros(1, 3, 32, 32))  # BatchNorm not folded


def test_threads_share_the_plans_safely(trunk: LiteTrunk) -> None:
    x = torch.randn(1, 3, 96, 96)
    with torch.inference_mode():
        ref = trunk.reference_stage_maps(x, [HEAD_STAGE])[HEAD_STAGE]
    results: list[torch.Tensor] = []

    def work() -> None:
        with torch.inference_mode():
            for _ in range(3):
                results.append(trunk.stage_maps(x, [HEAD_STAGE])[HEAD_STAGE])

    threads = [threading.Thread(target=work) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(results) == 9
    assert max(float((r - ref).abs().max()) for r in results) < 1e-4
