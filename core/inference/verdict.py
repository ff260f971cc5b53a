"""Per-part verdicts: turn class probabilities into what an inspector acts on (OK, reject, check by hand)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np


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

    min_confidence: float = 0.6
    min_margin: float = 0.15
    defect_classes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {self.min_confidence}")
        if not 0.0 <= self.min_margin <= 1.0:
            raise ValueError(f"min_margin must lie in [0, 1], got {self.min_margin}")


@dataclass(frozen=True)
class Verdict:
    """One part's verdict.

    ``probabilities`` follows ``class_names``; ``confidence`` is the top probability and ``margin`` its lead
    over the runner-up.
    """

    part_id: int
    class_name: str
    class_index: int
    confidence: float
    margin: float
    decision: Decision
    probabilities: tuple[float, ...]
    class_names: tuple[str, ...]

    @property
    def low_confidence(self) -> bool:
        return self.decision is Decision.CHECK


def decide(
    part_id: int,
    probabilities: Sequence[float] | np.ndarray,
    class_names: Sequence[str],
    policy: VerdictPolicy,
) -> Verdict:
    """Make a :class:`Verdict` from one row of class probabilities.

    Raises
    ------
    ValueError
        When the number of probabilities differs from the number of class names, or they are not a distribution.
    """
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if p.size != len(class_names) or p.size < 2:
        raise ValueError(
            f"got {p.size} probabilities for {len(class_names)} classes; need one per class, >= 2"
        )
    if not np.all(np.isfinite(p)) or np.any(p < -1e-6) or abs(float(p.sum()) - 1.0) > 1e-3:
        raise ValueError(f"probabilities must be finite, non-negative and sum to 1; got {p.tolist()}")
    order = np.argsort(p)[::-1]
    top, second = int(order[0]), int(order[1])
    confidence = float(p[top])
    margin = float(p[top] - p[second])
    name = str(class_names[top])
    if confidence < policy.min_confidence or margin < policy.min_margin:
        decision = Decision.CHECK
    elif name in policy.defect_classes:
        decision = Decision.REJECT
    else:
        decision = Decision.OK
    return Verdict(
        part_id=part_id,
        class_name=name,
        class_index=top,
        confidence=confidence,
        margin=margin,
        decision=decision,
        probabilities=tuple(float(v) for v in p),
        class_names=tuple(str(c) for c in class_names),
    )
