"""Station test fixtures: a small real checkpoint and labelled synthetic parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.camera.synthetic import DEFECT_CLASSES, render_part

# Fast to render and to classify: small frames, parts every few frames, no frame rate limit.
FAST_LINE = "synthetic:seed=3,fps=0,speed=6,width=256,height=192,defect_rate=0.83"


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small, untrained ProtoNet checkpoint written with the real save_checkpoint (adapts in milliseconds)."""
    from core.imaging import Preprocess
    from core.meta import create_learner
    from core.models import create_model
    from core.storage.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "base.pt"
    model = create_model("conv4", in_channels=3, n_way=5, image_size=32, width=16)
    learner = create_learner("protonet", model, n_way=5)
    save_checkpoint(
        path,
        learner,
        preprocess=Preprocess(32, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        class_names=[],
        provenance={"purpose": "test"},
    )
    return path


def part_images(per_class: int, seed: int = 0) -> list[tuple[np.ndarray, str]]:
    """``per_class`` rendered parts of every defect class, as (image, class name)."""
    rng = np.random.default_rng(seed)
    return [(render_part(rng, name, size=64)[0], name) for name in DEFECT_CLASSES for _ in range(per_class)]
