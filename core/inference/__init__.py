"""Live inference: per-part verdicts with confidence, and running counts."""

from core.inference.live import LiveClassifier, PartScorer, ProbabilityModel, VerdictTally
from core.inference.verdict import UNKNOWN_DEFECT, AnomalyScore, Decision, Verdict, VerdictPolicy, decide

__all__ = [
    "UNKNOWN_DEFECT",
    "AnomalyScore",
    "Decision",
    "LiveClassifier",
    "PartScorer",
    "ProbabilityModel",
    "Verdict",
    "VerdictPolicy",
    "VerdictTally",
    "decide",
]
