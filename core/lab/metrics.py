"""Lab metrics on scored images: plain typed functions the CLI report and the GUI share.

Inputs are numpy arrays: true labels ``y_true`` ``(n,)`` and predictions ``y_pred`` ``(n,)`` as class indices,
probabilities ``probs`` ``(n, N)``. Intervals: a proportion (accuracy, precision, recall, escape and
false-reject rates) gets the Wilson score interval (sound at 0 or n successes and for small n, unlike the
normal approximation); F1 is not a proportion and gets a seeded percentile bootstrap over the scored images;
a mean over repeated runs (the shots curve) gets :func:`core.training.evaluate.mean_ci95`.

Verdicts follow :func:`core.inference.verdict.decide` exactly: CHECK when the top probability is below
``min_confidence`` or its lead over the runner-up below ``min_margin``, else REJECT for a defect class and OK
for the OK class. An *escape* is a defective part (true class is not the OK class) given OK; a *false reject*
is an OK part given REJECT; CHECK (a person looks) is counted on its own, never as either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.inference.verdict import Decision

Z95 = 1.959963984540054
#: Folder names taken to mean "good part" when no ``--ok-class`` is given (compared case-insensitively).
OK_CLASS_NAMES = ("ok", "good", "mt_free")
#: Verdict codes of :func:`verdict_codes` (index into this tuple).
DECISIONS = (Decision.OK, Decision.REJECT, Decision.CHECK)
_OK, _REJECT, _CHECK = 0, 1, 2


@dataclass(frozen=True)
class Proportion:
    """``successes`` of ``total`` with a 95% Wilson interval; ``value`` is ``None`` when ``total`` is 0."""

    successes: int
    total: int
    value: float | None
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson_interval(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion; ``(0, 1)`` when ``total`` is 0."""
    if total < 0 or not 0 <= successes <= total:
        raise ValueError(f"need 0 <= successes <= total, got {successes} of {total}")
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    denom = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: int, total: int) -> Proportion:
    """A :class:`Proportion` with its Wilson interval."""
    low, high = wilson_interval(int(successes), int(total))
    value = successes / total if total else None
    return Proportion(int(successes), int(total), value, low, high)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> Proportion:
    """Share of correct predictions."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    return proportion(int((yt == yp).sum()), int(yt.size))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``(N, N)`` int64: row = true class, column = predicted class."""
    yt, yp = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (yt, yp), 1)
    return out


def f1_score(y_true: np.ndarray, y_pred: np.ndarray, cls: int) -> float | None:
    """F1 of one class; ``None`` when the class is neither present nor predicted."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    tp = int(((yt == cls) & (yp == cls)).sum())
    fp = int(((yt != cls) & (yp == cls)).sum())
    fn = int(((yt == cls) & (yp != cls)).sum())
    return None if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def bootstrap_f1_interval(
    y_true: np.ndarray, y_pred: np.ndarray, cls: int, *, resamples: int = 1000, seed: int = 0
) -> tuple[float, float] | None:
    """95% percentile bootstrap interval of one class's F1 (images resampled with replacement, seeded)."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    if yt.size == 0:
        return None
    idx = np.random.default_rng(seed).integers(0, yt.size, size=(resamples, yt.size))
    t, p = yt[idx] == cls, yp[idx] == cls
    tp = (t & p).sum(1)
    denom = 2 * tp + (~t & p).sum(1) + (t & ~p).sum(1)
    values = (2 * tp / np.maximum(denom, 1))[denom > 0]
    if values.size == 0:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall and F1 of one class (one-vs-rest), with intervals."""

    name: str
    support: int
    predicted: int
    precision: Proportion
    recall: Proportion
    f1: float | None
    f1_low: float | None
    f1_high: float | None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["precision"], d["recall"] = self.precision.to_dict(), self.recall.to_dict()
        return d


def per_class_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str], *, seed: int = 0
) -> list[ClassMetrics]:
    """One :class:`ClassMetrics` per class, in ``class_names`` order."""
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    out: list[ClassMetrics] = []
    for i, name in enumerate(class_names):
        tp, predicted, support = int(cm[i, i]), int(cm[:, i].sum()), int(cm[i].sum())
        interval = bootstrap_f1_interval(y_true, y_pred, i, seed=seed)
        out.append(
            ClassMetrics(
                name=str(name),
                support=support,
                predicted=predicted,
                precision=proportion(tp, predicted),
                recall=proportion(tp, support),
                f1=f1_score(y_true, y_pred, i),
                f1_low=None if interval is None else interval[0],
                f1_high=None if interval is None else interval[1],
            )
        )
    return out


@dataclass(frozen=True)
class CalibrationBin:
    """Images whose top probability lies in ``[low, high)`` (the last bin includes 1.0)."""

    low: float
    high: float
    count: int
    mean_confidence: float | None
    accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> list[CalibrationBin]:
    """Reliability-diagram bins: equal-width bins of the top probability, with mean confidence and accuracy."""
    conf = np.asarray(confidence, np.float64)
    ok = np.asarray(correct, bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    bins: list[CalibrationBin] = []
    for b in range(n_bins):
        mask = which == b
        n = int(mask.sum())
        bins.append(
            CalibrationBin(
                float(edges[b]),
                float(edges[b + 1]),
                n,
                float(conf[mask].mean()) if n else None,
                float(ok[mask].mean()) if n else None,
            )
        )
    return bins


def expected_calibration_error(bins: Sequence[CalibrationBin]) -> float | None:
    """Count-weighted mean of ``|accuracy - mean confidence|`` over the bins (ECE)."""
    total = sum(b.count for b in bins)
    if total == 0:
        return None
    return float(
        sum(b.count * abs((b.accuracy or 0.0) - (b.mean_confidence or 0.0)) for b in bins if b.count) / total
    )


def find_ok_class(class_names: Sequence[str], explicit: str | None = None) -> str | None:
    """The class that means "good part": ``explicit`` if given (must exist), else ok / good / MT_Free.

    Raises
    ------
    ValueError
        ``explicit`` is not one of the class names, or several names look like the OK class.
    """
    if explicit is not None:
        if explicit not in class_names:
            raise ValueError(f"--ok-class {explicit!r} is not one of the model's classes {list(class_names)}")
        return explicit
    found = [c for c in class_names if c.rsplit("/", 1)[-1].lower() in OK_CLASS_NAMES]
    if len(found) > 1:
        raise ValueError(f"several classes look like the OK class ({found}); name one with --ok-class")
    return found[0] if found else None


def top_two(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top class ``(n,)``, its probability ``(n,)`` and its lead over the runner-up ``(n,)``."""
    p = np.asarray(probs, np.float64)
    part = np.sort(p, axis=1)
    return p.argmax(1), part[:, -1], part[:, -1] - part[:, -2]


def verdict_codes(
    probs: np.ndarray, defect: np.ndarray, min_confidence: float, min_margin: float
) -> np.ndarray:
    """Decisions ``(n,)`` as indices into :data:`DECISIONS`, exactly as :func:`~core.inference.verdict.decide`.

    ``defect`` ``(N,)`` bool marks the classes that mean reject.
    """
    top, conf, margin = top_two(probs)
    codes = np.where(np.asarray(defect, bool)[top], _REJECT, _OK)
    return np.where((conf < min_confidence) | (margin < min_margin), _CHECK, codes)


@dataclass(frozen=True)
class Costs:
    """What each outcome costs (any unit): an escaped defect, a good part rejected, a part checked by hand."""

    escape: float = 10.0
    reject: float = 1.0
    check: float = 0.2

    def __post_init__(self) -> None:
        if min(self.escape, self.reject, self.check) < 0:
            raise ValueError(f"costs must not be negative, got {self}")


@dataclass(frozen=True)
class ThresholdPoint:
    """Outcome of one (min_confidence, min_margin) pair on the scored images."""

    min_confidence: float
    min_margin: float
    parts: int
    escapes: int
    defective: int
    false_rejects: int
    ok_parts: int
    checks: int
    escape_rate: float | None
    false_reject_rate: float | None
    check_rate: float
    cost_per_part: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def threshold_point(
    probs: np.ndarray,
    y_true: np.ndarray,
    defect: np.ndarray,
    min_confidence: float,
    min_margin: float,
    costs: Costs = Costs(),
) -> ThresholdPoint:
    """Escapes, false rejects and checks under one pair of thresholds."""
    d = np.asarray(defect, bool)
    codes = verdict_codes(probs, d, min_confidence, min_margin)
    is_defect = d[np.asarray(y_true, np.int64)]
    escapes = int((is_defect & (codes == _OK)).sum())
    false_rejects = int((~is_defect & (codes == _REJECT)).sum())
    checks = int((codes == _CHECK).sum())
    n, n_defect = int(codes.size), int(is_defect.sum())
    n_ok = n - n_defect
    cost = costs.escape * escapes + costs.reject * false_rejects + costs.check * checks
    return ThresholdPoint(
        float(min_confidence), float(min_margin), n, escapes, n_defect, false_rejects, n_ok, checks,
        escapes / n_defect if n_defect else None, false_rejects / n_ok if n_ok else None,
        checks / n if n else 0.0, cost / n if n else 0.0,
    )  # fmt: skip


DEFAULT_CONFIDENCES = tuple(round(0.05 * i, 2) for i in range(20))
DEFAULT_MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)


def threshold_sweep(
    probs: np.ndarray,
    y_true: np.ndarray,
    defect: np.ndarray,
    *,
    confidences: Sequence[float] = DEFAULT_CONFIDENCES,
    margins: Sequence[float] = DEFAULT_MARGINS,
    costs: Costs = Costs(),
) -> list[ThresholdPoint]:
    """Every (min_margin, min_confidence) pair of the grid, margin-major."""
    return [threshold_point(probs, y_true, defect, c, m, costs) for m in margins for c in confidences]


def suggest_thresholds(points: Sequence[ThresholdPoint]) -> ThresholdPoint:
    """The point of least cost per part; ties go to fewer checks, then to the lower thresholds."""
    if not points:
        raise ValueError("no threshold points to choose from")
    return min(points, key=lambda p: (round(p.cost_per_part, 12), p.checks, p.min_confidence, p.min_margin))


@dataclass(frozen=True)
class Mistake:
    """One wrong prediction (index into the scored images)."""

    index: int
    true_class: str
    predicted_class: str
    confidence: float


def confident_mistakes(
    y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], limit: int = 12
) -> list[Mistake]:
    """The ``limit`` wrong predictions with the highest top probability, most confident first."""
    top, conf, _ = top_two(probs)
    yt = np.asarray(y_true, np.int64)
    wrong = np.flatnonzero(top != yt)
    order = wrong[np.argsort(-conf[wrong], kind="stable")][:limit]
    return [Mistake(int(i), class_names[yt[i]], class_names[top[i]], float(conf[i])) for i in order]
