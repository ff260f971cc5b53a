"""The batch size of ``metainspect-lab run`` follows the input size (a pixel budget per forward pass)."""

from __future__ import annotations

import pytest

from core.lab.scoring import BATCH, RUN_BATCH_PIXELS, run_batch


def test_run_batch_keeps_the_pixels_per_forward_pass_near_the_budget() -> None:
    assert (run_batch(224), run_batch(160)) == (4, 8)  # the sweep's best on the 2-core VM
    for size in (64, 96, 128, 192, 256, 320):
        b = run_batch(size)
        assert 1 <= b <= BATCH
        if 1 < b < BATCH:  # the nearest whole batch to the budget
            assert abs(b * size * size - RUN_BATCH_PIXELS) <= size * size / 2
    assert run_batch(16) == BATCH and run_batch(2000) == 1
    with pytest.raises(ValueError, match="positive"):
        run_batch(0)
