"""Metrics of an anomaly score: image AUROC and the false-reject / escape sweep of the reject threshold.

Plain functions on score arrays (OK parts and defective parts), for the lab CLI, the benchmark and reports.
A false reject is an OK part scored above the threshold; an escape is a defective part scored at or below it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _scores(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"no {what} scores: AUROC needs at least one OK and one defective part")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} scores must be finite")
    return arr


def auroc(ok_scores: Sequence[float] | np.ndarray, defect_scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve of "defective scores higher than OK": the chance that a random defective
    part outscores a random OK part, ties counting one half (the Mann-Whitney U statistic over n_ok * n_def).

    Raises
    ------
    ValueError
        Either side empty, or a non-finite score.
    """
    ok = _scores(ok_scores, "OK")
    bad = _scores(defect_scores, "defective")
    both = np.concatenate([ok, bad])
    # average ranks (ties share their mean rank), then U = rank sum of the defective side - its minimum
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(both.size, dtype=np.float64)
    sorted_vals = both[order]
    i = 0
    while i < both.size:
        j = i
        while j + 1 < both.size and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    u = ranks[ok.size :].sum() - bad.size * (bad.size + 1) / 2.0
    return float(u / (ok.size * bad.size))


@dataclass(frozen=True)
class SweepPoint:
    """One reject threshold: parts scoring above it are rejected."""

    threshold: float
    false_reject_rate: float  # share of OK parts rejected
    escape_rate: float  # share of defective parts passed as OK


def threshold_sweep(
    ok_scores: Sequence[float] | np.ndarray, defect_scores: Sequence[float] | np.ndarray
) -> list[SweepPoint]:
    """Every distinct threshold that changes a decision, ascending: the false-reject / escape trade-off.

    The first point (the lowest score minus a little) rejects every part; the last (the highest score)
    passes every part.
    """
    ok = _scores(ok_scores, "OK")
    bad = _scores(defect_scores, "defective")
    values = np.unique(np.concatenate([ok, bad]))
    below = np.nextafter(values[0], -np.inf)
    thresholds = np.concatenate([[below], values])
    ok_sorted, bad_sorted = np.sort(ok), np.sort(bad)
    fr = 1.0 - np.searchsorted(ok_sorted, thresholds, side="right") / ok.size
    esc = np.searchsorted(bad_sorted, thresholds, side="right") / bad.size
    return [SweepPoint(float(t), float(f), float(e)) for t, f, e in zip(thresholds, fr, esc, strict=True)]


def detection_at_false_reject(
    ok_scores: Sequence[float] | np.ndarray,
    defect_scores: Sequence[float] | np.ndarray,
    max_false_reject: float,
) -> SweepPoint:
    """The sweep point that catches the most defective parts while rejecting at most ``max_false_reject``
    of the OK ones (detection rate = ``1 - escape_rate``)."""
    allowed = [
        p for p in threshold_sweep(ok_scores, defect_scores) if p.false_reject_rate <= max_false_reject
    ]
    return min(allowed, key=lambda p: (p.escape_rate, p.false_reject_rate))
