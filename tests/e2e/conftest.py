from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.conftest import _isolated_qsettings, _refcount_guard  # noqa: F401  (as in the app tests)


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small, untrained ProtoNet checkpoint written with the real save_checkpoint."""
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
