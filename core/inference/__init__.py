"""Live inference: per-part verdicts with confidence, and running counts."""

from core.inference.live import LiveClassifier, ProbabilityModel, VerdictTally
from core.inference.verdict import Decision, Verdict, VerdictPolicy, decide

__all__ = [
    "Decision",
    "LiveClassifier",
    "ProbabilityModel",
    "Verdict",
    "VerdictPolicy",
    "VerdictTally",
    "decide",
]
