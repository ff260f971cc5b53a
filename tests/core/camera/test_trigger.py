"""PartTrigger: one crop per part, on the synthetic line and on a recorded video of it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from core.camera import PartTrigger, open_source
from tests.core.camera.media import write_video


def fully_visible_parts(frames: list, width: int) -> set[int]:
    """Ground truth: parts whose sprite lay wholly inside the frame at least once."""
    return {
        p.part_id
        for f in frames
        for p in f.parts
        if p.part_box[0] >= 0 and p.part_box[0] + p.part_box[2] <= width
    }


@pytest.mark.parametrize(
    "options",
    [
        "seed=1,defect_rate=0.5,speed=1.5",
        "seed=2,variant=mixed,speed=3,noise=6,drift=0.15,blur=0.8",
        "seed=3,variant=cast_hex,gap=0.25,speed=1.5",
    ],
)
def test_each_part_is_emitted_exactly_once_with_its_class(options: str) -> None:
    with open_source(f"synthetic:width=320,height=240,fps=0,frames=300,{options}") as source:
        frames = list(source)
    trigger = PartTrigger(crop_size=96)
    crops = [c for f in frames for c in trigger.feed(f)]
    truth_ids = [c.truth.part_id for c in crops if c.truth is not None]
    assert all(c.truth is not None for c in crops)
    assert Counter(truth_ids).most_common(1)[0][1] == 1  # never twice
    expected = fully_visible_parts(frames, 320)
    assert expected <= set(truth_ids)  # none missed
    # the sprite has a margin round the part, so the last part may be cut before its sprite is all in view
    assert set(truth_ids) - expected <= {p.part_id for p in frames[-1].parts}
    assert [c.part_id for c in crops] == list(range(len(crops)))
    for crop in crops:
        assert crop.image.shape == (96, 96, 3)
        x, y, w, h = crop.box
        tx, ty, tw, th = crop.truth.part_box
        assert tx <= x and x + w <= tx + tw and ty <= y and y + h <= ty + th  # box lies on the sprite


def test_crop_is_cut_as_soon_as_the_part_is_fully_inside() -> None:
    with open_source("synthetic:width=320,height=240,fps=0,frames=200,seed=5") as source:
        frames = list(source)
    trigger = PartTrigger()
    crops = [c for f in frames for c in trigger.feed(f)]
    assert len(crops) >= 4
    step = 320 / 100  # belt advance per frame at speed 1
    for crop in crops[1:]:  # the first part may already be inside the first frame
        assert 0 < crop.box[0] <= 2 * step + 12  # the part body starts a few pixels inside its sprite
        assert crop.truth.part_box[0] < 0  # the sprite margin is still outside: cut at the first chance


def test_trigger_works_on_a_recorded_video_of_the_line(tmp_path: Path) -> None:
    with open_source("synthetic:width=320,height=240,fps=0,frames=300,seed=7,variant=mixed") as source:
        frames = list(source)
    expected = len(fully_visible_parts(frames, 320))
    video = write_video(tmp_path / "line.avi", [f.image for f in frames], fps=30)
    trigger = PartTrigger()
    with open_source(f"file:{video}") as recorded:
        crops = [c for f in recorded for c in trigger.feed(f)]
    assert expected <= len(crops) <= expected + 1
    assert all(c.truth is None for c in crops)


def test_roi_limits_detection_and_grey_frames_work() -> None:
    with open_source("synthetic:width=320,height=240,fps=0,frames=300,seed=4,grey=1") as source:
        frames = list(source)
    full = PartTrigger()
    left = PartTrigger(roi=(0, 0, 200, 240))
    n_full = sum(len(full.feed(f)) for f in frames)
    n_left = sum(len(left.feed(f.image)) for f in frames)
    assert len(fully_visible_parts(frames, 320)) <= n_full <= len(fully_visible_parts(frames, 320)) + 1
    assert 0 < n_left <= n_full + 1


def test_bad_input_gives_clear_errors() -> None:
    trigger = PartTrigger(roi=(0, 0, 500, 500))
    with pytest.raises(ValueError, match="outside"):
        trigger.feed(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        PartTrigger().feed(np.zeros((10, 10), np.float32))
    with pytest.raises(ValueError):
        PartTrigger(fill=0.05)
