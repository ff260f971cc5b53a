"""The local binary pattern (LBP) definition shared by the numpy texture features and the torch backbones."""

from __future__ import annotations

import numpy as np

# The 8 neighbours of a pixel at radius 1, counter-clockwise from the right; bit i of an LBP code is
# "neighbour i >= centre". Fixed by the LBP definition (Ojala et al. 2002), hence module constants.
LBP_OFFSETS: tuple[tuple[int, int], ...] = (
    (0, 1),
    (-1, 1),
    (-1, 0),
    (-1, -1),
    (0, -1),
    (1, -1),
    (1, 0),
    (1, 1),
)
LBP_UNIFORM_BINS = 59  # 58 uniform 8-bit patterns (<= 2 circular 0/1 transitions) + 1 bin for all others


def _uniform_lbp_table() -> np.ndarray:
    """256-entry map from an 8-bit LBP code to its uniform-pattern bin (0..57) or 58 (non-uniform)."""
    table = np.full(256, LBP_UNIFORM_BINS - 1, dtype=np.int64)
    nxt = 0
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(8)]
        transitions = sum(bits[i] != bits[(i + 1) % 8] for i in range(8))
        if transitions <= 2:
            table[code] = nxt
            nxt += 1
    table.setflags(write=False)
    return table


UNIFORM_LBP_TABLE: np.ndarray = _uniform_lbp_table()
