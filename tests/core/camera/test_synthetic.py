"""The synthetic parts and production line: determinism, ground truth that matches the pixels, options."""

from __future__ import annotations

import numpy as np
import pytest

from core.camera import open_source
from core.camera.synthetic import DEFECT_CLASSES, list_variants, render_part
from core.camera.synthetic_line import shown_classes


def test_defect_classes_and_variants_are_offered() -> None:
    assert DEFECT_CLASSES[:5] == ("ok", "scratch", "spot", "crack", "dent")
    assert len(list_variants()) >= 4 and list_variants()[0] == "default"


@pytest.mark.parametrize("variant", list_variants())
def test_render_part_shapes_and_boxes_for_every_class(variant: str) -> None:
    rng = np.random.default_rng(0)
    for cls in DEFECT_CLASSES:
        image, box = render_part(rng, cls, variant=variant, size=96)
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8
        if cls == "ok":
            assert box is None
        else:
            assert box is not None
            x, y, w, h = box
            assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 96 and y + h <= 96


def test_render_part_is_deterministic_for_a_seed() -> None:
    a, box_a = render_part(np.random.default_rng(42), "crack", variant="cast_hex")
    b, box_b = render_part(np.random.default_rng(42), "crack", variant="cast_hex")
    c, _ = render_part(np.random.default_rng(43), "crack", variant="cast_hex")
    assert np.array_equal(a, b) and box_a == box_b
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("cls", DEFECT_CLASSES[1:])
def test_defect_box_contains_the_changed_pixels(cls: str) -> None:
    """Same seed, with and without the defect: every clearly changed pixel lies inside the box."""
    for seed in range(8):
        variant = list_variants()[seed % len(list_variants())]
        ok, _ = render_part(np.random.default_rng(seed), "ok", variant=variant)
        bad, box = render_part(np.random.default_rng(seed), cls, variant=variant)
        assert box is not None
        diff = np.abs(ok.astype(np.int16) - bad.astype(np.int16)).max(axis=2)
        changed = diff > 12
        assert changed.sum() >= 15, f"{cls} on {variant} (seed {seed}) is barely visible"
        x, y, w, h = box
        inside = np.zeros_like(changed)
        inside[y : y + h, x : x + w] = True
        assert changed[~inside].sum() == 0
        assert changed[inside].mean() > 0.02


def test_render_part_rejects_unknown_class_variant_and_size() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="known classes"):
        render_part(rng, "rust", variant="default")
    with pytest.raises(ValueError, match="known variants"):
        render_part(rng, "ok", variant="plastic")
    with pytest.raises(ValueError, match="out of range"):
        render_part(rng, "ok", variant=99)
    with pytest.raises(ValueError, match="size"):
        render_part(rng, "ok", size=4)


def test_line_is_deterministic_for_a_seed_and_differs_between_seeds() -> None:
    def grab(seed: int) -> list[np.ndarray]:
        with open_source(f"synthetic:seed={seed},width=160,height=120,fps=0,frames=20") as source:
            return [f.image for f in source]

    a, b, c = grab(3), grab(3), grab(4)
    assert len(a) == 20
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_line_ground_truth_matches_the_drawn_parts() -> None:
    with open_source(
        "synthetic:width=320,height=240,fps=0,noise=0,drift=0,defect_rate=1,frames=200"
    ) as source:
        frames = list(source)
    belt = np.array([52, 54, 57], np.float32)
    checked = 0
    for frame in frames:
        for part in frame.parts:
            x, y, w, h = part.part_box
            if x < 0 or x + w > 320:
                continue
            centre = frame.image[y + h // 2 - 3 : y + h // 2 + 3, x + w // 2 - 3 : x + w // 2 + 3]
            assert np.abs(centre.reshape(-1, 3).mean(axis=0) - belt).max() > 30  # a part is there
            assert part.defect_class != "ok" and part.defect_box is not None
            dx, dy, dw, dh = part.defect_box
            assert x <= dx and y <= dy and dx + dw <= x + w and dy + dh <= y + h
            checked += 1
    assert checked > 20
    moving = [
        f.parts[0].part_box[0]
        for f in frames[:5]
        if f.parts and f.parts[0].part_id == frames[0].parts[0].part_id
    ]
    assert moving == sorted(moving) and moving[-1] > moving[0]  # parts travel left to right


def test_defect_rate_controls_share_of_defective_parts() -> None:
    def classes(rate: float) -> list[str]:
        with open_source(f"synthetic:width=160,height=120,fps=0,defect_rate={rate},frames=600") as source:
            return list({p.part_id: p.defect_class for f in source for p in f.parts}.values())

    assert set(classes(0.0)) == {"ok"}
    assert "ok" not in classes(1.0)
    mixed = classes(0.5)
    assert 0.2 < mixed.count("ok") / len(mixed) < 0.8
    # what the line says it shows (demo teaching waits for nothing else) is what it shows
    assert shown_classes("synthetic:defect_rate=0") == ("ok",)
    assert set(classes(1.0)) <= set(shown_classes("synthetic:defect_rate=1")) == set(DEFECT_CLASSES) - {"ok"}
    assert shown_classes("synthetic:seed=2") == DEFECT_CLASSES


def test_line_mode_delivers_row_blocks_and_mixed_variants_vary() -> None:
    with open_source("synthetic:mode=line,width=200,lines=8,fps=0,frames=400,variant=mixed") as source:
        blocks = list(source)
    assert all(b.image.shape == (8, 200, 3) for b in blocks)
    variants = {p.variant for b in blocks for p in b.parts}
    assert len(variants) >= 3


def test_grey_option_gives_grey_frames() -> None:
    with open_source("synthetic:width=64,height=48,fps=0,grey=1") as source:
        assert source.read().image.shape == (48, 64)


def test_fps_option_paces_reads() -> None:
    with open_source("synthetic:width=64,height=48,fps=50") as source:
        frames = [source.read() for _ in range(11)]
    span = frames[-1].timestamp - frames[0].timestamp
    assert 0.15 < span < 0.5
