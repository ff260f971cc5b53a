from __future__ import annotations

import pytest

from core.inference import UNKNOWN_DEFECT, AnomalyScore, Decision, VerdictPolicy, VerdictTally, decide

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


# ---- the anomaly signal ------------------------------------------------------------------------------------
FAR = AnomalyScore(score=3.0, threshold=1.0)
NEAR = AnomalyScore(score=0.5, threshold=1.0)


def test_part_far_from_every_ok_part_is_an_unknown_defect_even_when_the_classifier_says_ok() -> None:
    v = decide(3, [0.95, 0.03, 0.02], NAMES, POLICY, anomaly=FAR)
    assert v.decision is Decision.REJECT
    assert v.class_name == UNKNOWN_DEFECT and v.unknown_defect and v.class_index == -1
    assert v.anomaly is FAR
    assert v.confidence == pytest.approx(0.95)  # the classifier's view is kept for the record


def test_anomalous_part_the_classifier_names_keeps_the_taught_defect_name() -> None:
    v = decide(3, [0.05, 0.9, 0.05], NAMES, POLICY, anomaly=FAR)
    assert (v.decision, v.class_name, v.unknown_defect) == (Decision.REJECT, "scratch", False)


def test_anomalous_part_the_classifier_is_unsure_about_is_rejected_as_unknown() -> None:
    v = decide(3, [0.45, 0.35, 0.2], NAMES, POLICY, anomaly=FAR)
    assert (v.decision, v.class_name) == (Decision.REJECT, UNKNOWN_DEFECT)


def test_normal_anomaly_score_leaves_the_classifier_verdict_alone() -> None:
    assert decide(3, [0.95, 0.03, 0.02], NAMES, POLICY, anomaly=NEAR).decision is Decision.OK
    assert decide(3, [0.05, 0.9, 0.05], NAMES, POLICY, anomaly=NEAR).class_name == "scratch"
    assert decide(3, [0.45, 0.35, 0.2], NAMES, POLICY, anomaly=NEAR).decision is Decision.CHECK


def test_ok_examples_only_decide_by_the_anomaly_score_alone() -> None:
    ok = decide(1, [1.0], ("ok",), POLICY, anomaly=NEAR)
    bad = decide(2, [1.0], ("ok",), POLICY, anomaly=FAR)
    assert (ok.decision, ok.class_name) == (Decision.OK, "ok")
    assert (bad.decision, bad.class_name) == (Decision.REJECT, UNKNOWN_DEFECT)


def test_a_single_class_without_an_anomaly_score_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 2"):
        decide(1, [1.0], ("ok",), POLICY)


def test_score_exactly_at_the_threshold_is_not_anomalous() -> None:
    assert not AnomalyScore(1.0, 1.0).anomalous
    assert AnomalyScore(2.0, 1.0).ratio == pytest.approx(2.0)
