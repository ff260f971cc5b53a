from __future__ import annotations

import pytest

from core.inference import Decision, VerdictPolicy, VerdictTally, decide

NAMES = ("ok", "scratch", "dent")
POLICY = VerdictPolicy(min_confidence=0.6, min_margin=0.15, defect_classes=frozenset({"scratch", "dent"}))


def test_confident_good_class_is_ok() -> None:
    v = decide(7, [0.9, 0.05, 0.05], NAMES, POLICY)
    assert (v.part_id, v.class_name, v.decision) == (7, "ok", Decision.OK)
    assert v.confidence == pytest.approx(0.9)
    assert v.margin == pytest.approx(0.85)


def test_confident_defect_is_reject() -> None:
    v = decide(1, [0.1, 0.8, 0.1], NAMES, POLICY)
    assert v.decision is Decision.REJECT
    assert v.class_name == "scratch"


def test_low_confidence_goes_to_check_even_for_good_class() -> None:
    v = decide(1, [0.5, 0.3, 0.2], NAMES, POLICY)
    assert v.decision is Decision.CHECK
    assert v.low_confidence


def test_small_margin_goes_to_check() -> None:
    v = decide(1, [0.62, 0.0, 0.38], NAMES, VerdictPolicy(min_confidence=0.6, min_margin=0.3))
    assert v.decision is Decision.CHECK


@pytest.mark.parametrize(
    ("probs", "match"),
    [([0.5, 0.5], "one per class"), ([0.5, 0.6, 0.1], "sum to 1"), ([1.2, -0.2, 0.0], "non-negative")],
)
def test_bad_probabilities_are_refused(probs: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        decide(1, probs, NAMES, POLICY)


def test_policy_rejects_thresholds_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match="min_confidence"):
        VerdictPolicy(min_confidence=1.5)


def test_tally_counts_decisions_and_reject_rate() -> None:
    tally = VerdictTally()
    for probs in ([0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.4, 0.3, 0.3]):
        tally.add(decide(0, probs, NAMES, POLICY))
    assert tally.total == 4
    assert tally.decisions[Decision.REJECT] == 2
    assert tally.reject_rate() == pytest.approx(0.5)
    tally.reset()
    assert tally.total == 0
