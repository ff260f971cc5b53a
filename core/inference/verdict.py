"""Per-part verdicts: turn class probabilities and the anomaly score into what an inspector acts on.

One policy, two signals. The few-shot classifier names the taught classes; the anomaly scorer (taught from OK
parts only, :mod:`core.inference.anomaly`) says how far a part is from every OK part seen. A part past the
anomaly threshold is REJECT even when the classifier says ok: if the classifier names a taught defect class,
the verdict keeps that name, otherwise it is an "unknown defect" (a defect type nobody has labelled). With OK
examples only (no classifier yet), the anomaly score alone decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from core.config import DEFAULT_MIN_CONFIDENCE, DEFAULT_MIN_MARGIN

#: Class name of a part rejected by the anomaly score alone (no taught defect class explains it).
UNKNOWN_DEFECT = "unknown defect"


class Decision(StrEnum):
    """What the line does with a part."""

    OK = "OK"
    REJECT = "REJECT"
    CHECK = "CHECK"  # the model is unsure: a person decides


@dataclass(frozen=True)
class VerdictPolicy:
    """Thresholds that turn probabilities into a decision.

    Parameters
    ----------
    min_confidence
        Below this top-class probability the part is sent to ``CHECK``.
    min_margin
        Below this gap between the two most likely classes the part is sent to ``CHECK``.
    defect_classes
        Names of the classes that mean reject. Every other class means OK.
    """

    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    min_margin: float = DEFAULT_MIN_MARGIN
    defect_classes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {self.min_confidence}")
        if not 0.0 <= self.min_margin <= 1.0:
            raise ValueError(f"min_margin must lie in [0, 1], got {self.min_margin}")


@dataclass(frozen=True)
class AnomalyScore:
    """One part's anomaly evidence.

    Attributes
    ----------
    score
        The part's score (largest patch distance to the OK bank, or the top-k mean).
    threshold
        The calibrated reject threshold; ``score > threshold`` means anomalous.
    patch_map
        ``(h, w)`` float32 patch distances on the feature grid, or ``None`` (upsample with
        :func:`core.inference.anomaly.upsample_map` to draw it over the part).
    """

    score: float
    threshold: float
    patch_map: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def anomalous(self) -> bool:
        return self.score > self.threshold

    @property
    def ratio(self) -> float:
        """Score over threshold (> 1: anomalous); a scale-free figure to show a person."""
        return self.score / self.threshold if self.threshold > 0 else float("inf")


@dataclass(frozen=True)
class Verdict:
    """One part's verdict.

    ``probabilities`` follows ``class_names``; ``confidence`` is the top probability and ``margin`` its lead
    over the runner-up. ``anomaly`` is the anomaly evidence when a scorer is taught. A part rejected by the
    anomaly score alone has ``class_name`` :data:`UNKNOWN_DEFECT` and ``class_index`` -1.
    """

    part_id: int
    class_name: str
    class_index: int
    confidence: float
    margin: float
    decision: Decision
    probabilities: tuple[float, ...]
    class_names: tuple[str, ...]
    anomaly: AnomalyScore | None = None

    @property
    def low_confidence(self) -> bool:
        return self.decision is Decision.CHECK

    @property
    def unknown_defect(self) -> bool:
        """Rejected because it is far from every OK part and no taught defect class explains it."""
        return self.class_name == UNKNOWN_DEFECT


def decide(
    part_id: int,
    probabilities: Sequence[float] | np.ndarray,
    class_names: Sequence[str],
    policy: VerdictPolicy,
    anomaly: AnomalyScore | None = None,
) -> Verdict:
    """Make a :class:`Verdict` from one row of class probabilities and, when taught, the anomaly score.

    Parameters
    ----------
    probabilities, class_names
        The classifier's output. With an anomaly score and no classifier (OK examples only), one class (the
        OK class) with probability 1.
    anomaly
        The part's anomaly evidence; past its threshold the part is rejected (see the module docstring).

    Raises
    ------
    ValueError
        When the number of probabilities differs from the number of class names, they are not a
        distribution, or there is a single class without an anomaly score.
    """
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    least = 1 if anomaly is not None else 2
    if p.size != len(class_names) or p.size < least:
        raise ValueError(
            f"got {p.size} probabilities for {len(class_names)} classes; need one per class, >= {least}"
        )
    if not np.all(np.isfinite(p)) or np.any(p < -1e-6) or abs(float(p.sum()) - 1.0) > 1e-3:
        raise ValueError(f"probabilities must be finite, non-negative and sum to 1; got {p.tolist()}")
    order = np.argsort(p)[::-1]
    top = int(order[0])
    confidence = float(p[top])
    margin = float(p[top] - p[int(order[1])]) if p.size > 1 else confidence
    name = str(class_names[top])
    if confidence < policy.min_confidence or margin < policy.min_margin:
        decision = Decision.CHECK
    elif name in policy.defect_classes:
        decision = Decision.REJECT
    else:
        decision = Decision.OK
    if anomaly is not None and anomaly.anomalous and decision is not Decision.REJECT:
        # far from every OK part, and no taught defect class confidently explains it: a new defect type
        decision, name, top = Decision.REJECT, UNKNOWN_DEFECT, -1
    return Verdict(
        part_id=part_id,
        class_name=name,
        class_index=top,
        confidence=confidence,
        margin=margin,
        decision=decision,
        probabilities=tuple(float(v) for v in p),
        class_names=tuple(str(c) for c in class_names),
        anomaly=anomaly,
    )
