"""Station test fixtures: a small real checkpoint and labelled synthetic parts."""

from __future__ import annotations

import numpy as np

from core.camera.synthetic import DEFECT_CLASSES, render_part

# Fast to render and to classify: small frames, parts every few frames, no frame rate limit.
FAST_LINE = "synthetic:seed=3,fps=0,speed=6,width=256,height=192,defect_rate=0.83"


def part_images(per_class: int, seed: int = 0) -> list[tuple[np.ndarray, str]]:
    """``per_class`` rendered parts of every defect class, as (image, class name)."""
    rng = np.random.default_rng(seed)
    return [(render_part(rng, name, size=64)[0], name) for name in DEFECT_CLASSES for _ in range(per_class)]
