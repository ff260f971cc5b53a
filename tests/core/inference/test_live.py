from __future__ import annotations

import numpy as np
import pytest
import torch

from core.imaging import Preprocess
from core.inference import Decision, LiveClassifier, VerdictPolicy
from core.meta import create_learner
from core.models import create_model

PRE = Preprocess(24, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _parts(seed: int, n: int, level: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(rng.normal(level, 20, (30, 30, 3)), 0, 255).astype(np.uint8) for _ in range(n)]


def _classifier(norm: str) -> LiveClassifier:
    torch.manual_seed(0)
    model = create_model("conv4", in_channels=3, n_way=2, image_size=24, width=8, norm=norm)
    learner = create_learner("protonet", model, n_way=2)
    dark, bright = _parts(1, 4, 60), _parts(2, 4, 190)
    x = PRE.batch(dark + bright)
    y = torch.tensor([0] * 4 + [1] * 4)
    adapted = learner.adapt(x, y)
    policy = VerdictPolicy(min_confidence=0.0, min_margin=0.0, defect_classes=frozenset({"bright"}))
    return LiveClassifier(adapted, PRE, ["dark", "bright"], policy)


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_a_parts_verdict_does_not_depend_on_the_other_parts_in_the_frame(norm: str) -> None:
    live = _classifier(norm)
    part = _parts(3, 1, 70)
    alone = live.probabilities(part)[0]
    crowd = live.probabilities(part + _parts(4, 5, 220))[0]
    np.testing.assert_allclose(alone, crowd, atol=1e-5)


def test_live_classifier_separates_classes_it_was_adapted_to() -> None:
    live = _classifier("group")
    verdicts = live.classify([10, 11], _parts(5, 1, 60) + _parts(6, 1, 190))
    assert [v.class_name for v in verdicts] == ["dark", "bright"]
    assert [v.decision for v in verdicts] == [Decision.OK, Decision.REJECT]
    assert [v.part_id for v in verdicts] == [10, 11]


def test_live_classifier_rejects_mismatched_inputs() -> None:
    live = _classifier("group")
    with pytest.raises(ValueError, match="part ids"):
        live.classify([1, 2], _parts(7, 1, 60))
    with pytest.raises(ValueError, match="at least 2 classes"):
        LiveClassifier(live.model, PRE, ["only"])
    assert live.probabilities([]).shape == (0, 2)
