"""Image AUROC and the false-reject / escape sweep against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from core.lab.anomaly_metrics import auroc, detection_at_false_reject, threshold_sweep


def test_auroc_of_the_textbook_example_is_three_quarters() -> None:
    # defective 0.35 beats OK 0.1 but not 0.4; 0.8 beats both: 3 of 4 pairs
    assert auroc([0.1, 0.4], [0.35, 0.8]) == pytest.approx(0.75)


def test_auroc_counts_ties_as_half() -> None:
    # pairs: (2>1) 1, (2=2) 1/2, (3>1) 1, (3>2) 1 -> 3.5 / 4
    assert auroc([1.0, 2.0], [2.0, 3.0]) == pytest.approx(0.875)
    assert auroc([5.0, 5.0], [5.0]) == pytest.approx(0.5)


def test_auroc_is_one_when_separated_and_zero_when_reversed() -> None:
    assert auroc([0.0, 0.1, 0.2], [0.3, 0.9]) == 1.0
    assert auroc([0.3, 0.9], [0.0, 0.1, 0.2]) == 0.0


def test_auroc_matches_the_pairwise_definition_on_random_scores() -> None:
    rng = np.random.default_rng(0)
    ok = rng.integers(0, 20, 57).astype(float)  # many ties
    bad = rng.integers(5, 25, 31).astype(float)
    pairs = (bad[:, None] > ok[None, :]).mean() + 0.5 * (bad[:, None] == ok[None, :]).mean()
    assert auroc(ok, bad) == pytest.approx(pairs)


@pytest.mark.parametrize(("ok", "bad"), [([], [1.0]), ([1.0], []), ([float("nan")], [1.0])])
def test_auroc_refuses_empty_or_non_finite_scores(ok: list[float], bad: list[float]) -> None:
    with pytest.raises(ValueError):
        auroc(ok, bad)


def test_sweep_lists_false_rejects_and_escapes_per_threshold() -> None:
    points = threshold_sweep([1.0, 2.0, 3.0], [2.5, 4.0])
    got = [(p.threshold, round(p.false_reject_rate, 4), p.escape_rate) for p in points]
    assert got[0][1:] == (1.0, 0.0)  # below every score: everything rejected
    assert got[1:] == [
        (1.0, round(2 / 3, 4), 0.0),
        (2.0, round(1 / 3, 4), 0.0),
        (2.5, round(1 / 3, 4), 0.5),
        (3.0, 0.0, 0.5),
        (4.0, 0.0, 1.0),
    ]


def test_detection_at_false_reject_picks_the_fewest_escapes_within_the_budget() -> None:
    point = detection_at_false_reject([1.0, 2.0, 3.0], [2.5, 4.0], max_false_reject=0.34)
    assert (point.threshold, point.escape_rate) == (2.0, 0.0)
    strict = detection_at_false_reject([1.0, 2.0, 3.0], [2.5, 4.0], max_false_reject=0.0)
    assert (strict.threshold, strict.false_reject_rate, strict.escape_rate) == (3.0, 0.0, 0.5)
