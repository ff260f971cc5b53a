"""LineScanAssembler keeps row order and overlap exactly."""

from __future__ import annotations

import numpy as np
import pytest

from core.camera import LineScanAssembler, open_source


def numbered_rows(start: int, count: int, width: int = 5) -> np.ndarray:
    """Rows whose every pixel holds the global row index."""
    return np.repeat(np.arange(start, start + count, dtype=np.int32)[:, None], width, axis=1)


@pytest.mark.parametrize(("lines", "overlap", "block"), [(8, 0, 3), (8, 3, 5), (4, 1, 1), (6, 5, 17)])
def test_frames_hold_exact_rows_in_order_with_overlap(lines: int, overlap: int, block: int) -> None:
    assembler = LineScanAssembler(lines, overlap)
    frames = []
    total = 0
    while total < 100:
        frames += assembler.feed(numbered_rows(total, block))
        total += block
    step = lines - overlap
    assert len(frames) == (total - lines) // step + 1
    for k, frame in enumerate(frames):
        assert frame.frame_id == k
        assert np.array_equal(frame.image[:, 0], np.arange(k * step, k * step + lines))
    assert assembler.lines_seen == total


def test_single_lines_and_colour_blocks() -> None:
    assembler = LineScanAssembler(3)
    out = []
    for i in range(7):
        out += assembler.feed(np.full((1, 4, 3), i, np.uint8))
    assert [f.image[:, 0, 0].tolist() for f in out] == [[0, 1, 2], [3, 4, 5]]
    assert out[0].image.shape == (3, 4, 3)


def test_mismatched_blocks_and_bad_settings_are_rejected() -> None:
    assembler = LineScanAssembler(4)
    assembler.feed(np.zeros((2, 10), np.uint8))
    with pytest.raises(ValueError, match="does not match"):
        assembler.feed(np.zeros((2, 11), np.uint8))
    with pytest.raises(ValueError, match="row block"):
        assembler.feed(np.zeros((10,), np.uint8))
    with pytest.raises(ValueError, match="overlap"):
        LineScanAssembler(4, overlap=4)
    with pytest.raises(ValueError, match="lines"):
        LineScanAssembler(0)


def test_synthetic_line_rows_assemble_into_frames_with_part_truth() -> None:
    assembler = LineScanAssembler(lines=256, overlap=64)
    frames = []
    with open_source("synthetic:mode=line,width=160,lines=16,fps=0,frames=200,noise=0,drift=0") as source:
        blocks = list(source)
    for block in blocks:
        frames += assembler.feed(block)
    assert len(frames) == (200 * 16 - 256) // 192 + 1
    stacked = np.concatenate([b.image for b in blocks])
    assert np.array_equal(frames[2].image, stacked[2 * 192 : 2 * 192 + 256])
    belt = np.array([52, 54, 57], np.float32)
    seen = 0
    for frame in frames:
        for part in frame.parts:
            x, y, w, h = part.part_box
            if y >= 0 and y + h <= 256:
                centre = frame.image[y + h // 2 - 2 : y + h // 2 + 2, x + w // 2 - 2 : x + w // 2 + 2]
                assert np.abs(centre.reshape(-1, 3).mean(axis=0) - belt).max() > 30
                seen += 1
    assert seen > 3
