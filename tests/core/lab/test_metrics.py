"""Lab metrics against values worked out by hand on small made-up predictions."""

from __future__ import annotations

import numpy as np
import pytest

from core.inference.verdict import VerdictPolicy, decide
from core.lab.metrics import (
    DECISIONS,
    Costs,
    accuracy,
    calibration_bins,
    confident_mistakes,
    confusion_matrix,
    expected_calibration_error,
    find_ok_class,
    per_class_metrics,
    suggest_thresholds,
    threshold_point,
    threshold_sweep,
    verdict_codes,
    wilson_interval,
)

Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2])


def test_confusion_rows_are_true_classes_and_columns_predictions() -> None:
    assert confusion_matrix(Y_TRUE, Y_PRED, 3).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_accuracy_precision_recall_f1_match_hand_values() -> None:
    acc = accuracy(Y_TRUE, Y_PRED)
    assert (acc.successes, acc.total) == (4, 6) and acc.value == pytest.approx(4 / 6)
    m = per_class_metrics(Y_TRUE, Y_PRED, ["a", "b", "c"])
    assert [c.precision.value for c in m] == pytest.approx([1.0, 0.5, 0.5])
    assert [c.recall.value for c in m] == pytest.approx([2 / 3, 0.5, 1.0])
    assert [c.f1 for c in m] == pytest.approx([0.8, 0.5, 2 / 3])
    assert [c.support for c in m] == [3, 2, 1] and [c.predicted for c in m] == [2, 2, 2]
    for c in m:  # the bootstrap interval brackets the point estimate
        assert c.f1_low is not None and c.f1_high is not None and c.f1_low <= c.f1 <= c.f1_high


def test_wilson_interval_matches_the_formula_by_hand() -> None:
    # 2 of 3: centre (p + z^2/2n) / (1 + z^2/n) = 0.5731, half-width 0.3654
    low, high = wilson_interval(2, 3)
    assert (low, high) == pytest.approx((0.2077, 0.9385), abs=1e-4)
    # 0 of 10: the upper bound is z^2 / (n + z^2)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 1.96**2 / (10 + 1.96**2)), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(4, 3)


def test_precision_of_a_class_never_predicted_is_undefined_not_zero() -> None:
    m = per_class_metrics(np.array([0, 1]), np.array([0, 0]), ["a", "b"])
    assert m[1].precision.value is None and m[1].precision.total == 0 and m[1].recall.value == 0.0


def test_calibration_bins_and_ece() -> None:
    conf = np.array([0.05, 0.15, 0.95, 1.0, 0.55])
    correct = np.array([False, True, True, True, False])
    bins = calibration_bins(conf, correct, 10)
    assert [b.count for b in bins] == [1, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert bins[9].mean_confidence == pytest.approx(0.975) and bins[9].accuracy == 1.0
    assert bins[2].accuracy is None
    # (|0-.05| + |1-.15| + |0-.55| + 2 |1-.975|) / 5
    assert expected_calibration_error(bins) == pytest.approx(0.3)


CLASSES = ["ok", "scratch", "dent"]
DEFECT = np.array([False, True, True])
PROBS = np.array(
    [
        [0.9, 0.05, 0.05],  # ok, called ok
        [0.3, 0.6, 0.1],  # ok, called scratch (0.6, lead 0.3): a false reject when not checked
        [0.7, 0.2, 0.1],  # scratch, called ok (0.7): an escape when not checked
        [0.1, 0.45, 0.45],  # dent, a tie: lead 0, checked whenever min_margin > 0
        [0.05, 0.9, 0.05],  # scratch, rejected
    ]
)
TRUTH = np.array([0, 0, 1, 2, 1])


def test_threshold_point_counts_escapes_false_rejects_and_checks() -> None:
    p = threshold_point(PROBS, TRUTH, DEFECT, 0.5, 0.1, Costs(escape=10, reject=1, check=0.2))
    assert (p.escapes, p.defective, p.false_rejects, p.ok_parts, p.checks) == (1, 3, 1, 2, 1)
    assert p.escape_rate == pytest.approx(1 / 3) and p.false_reject_rate == 0.5 and p.check_rate == 0.2
    assert p.cost_per_part == pytest.approx((10 + 1 + 0.2) / 5)
    strict = threshold_point(PROBS, TRUTH, DEFECT, 0.8, 0.1, Costs(escape=10, reject=1, check=0.2))
    assert (strict.escapes, strict.false_rejects, strict.checks) == (0, 0, 3)
    assert strict.cost_per_part == pytest.approx(0.6 / 5)


def test_sweep_covers_the_grid_and_the_suggestion_has_least_cost() -> None:
    points = threshold_sweep(PROBS, TRUTH, DEFECT, confidences=[0.5, 0.8], margins=[0.0, 0.1])
    assert [(p.min_margin, p.min_confidence) for p in points] == [
        (0.0, 0.5),
        (0.0, 0.8),
        (0.1, 0.5),
        (0.1, 0.8),
    ]
    best = suggest_thresholds(points)
    assert (best.min_confidence, best.min_margin) == (0.8, 0.0)  # 0.8 checks the same parts at either margin
    # with checks costing more than an escape, checking nothing wins
    cheap = suggest_thresholds(
        threshold_sweep(PROBS, TRUTH, DEFECT, confidences=[0.0, 0.8], margins=[0.0], costs=Costs(1, 1, 5))
    )
    assert cheap.min_confidence == 0.0 and cheap.checks == 0


def test_vectorised_verdicts_agree_with_the_live_policy() -> None:
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(3), size=200)
    for conf, margin in [(0.6, 0.15), (0.0, 0.0), (0.9, 0.3)]:
        codes = verdict_codes(probs, DEFECT, conf, margin)
        policy = VerdictPolicy(conf, margin, frozenset({"scratch", "dent"}))
        expected = [decide(i, row, CLASSES, policy).decision for i, row in enumerate(probs)]
        assert [DECISIONS[c] for c in codes] == expected


def test_ok_class_is_found_by_name_or_given() -> None:
    assert find_ok_class(["MT_Blowhole", "MT_Free"]) == "MT_Free"
    assert find_ok_class(["defective", "OK"]) == "OK"
    assert find_ok_class(["iron", "slag"]) is None
    assert find_ok_class(["iron", "slag"], "slag") == "slag"
    with pytest.raises(ValueError, match="not one of"):
        find_ok_class(["iron", "slag"], "good")


def test_confident_mistakes_come_most_confident_first() -> None:
    mistakes = confident_mistakes(TRUTH, PROBS, CLASSES, limit=5)
    got = [(m.index, m.true_class, m.predicted_class) for m in mistakes]
    assert got == [
        (2, "scratch", "ok"),
        (1, "ok", "scratch"),
        (3, "dent", "scratch"),
    ]  # a tie goes to the first
    assert mistakes[0].confidence == pytest.approx(0.7)
