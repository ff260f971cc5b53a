"""Meta-training, evaluation and few-shot adaptation as generators of frozen progress records."""

from core.training.adapt import AdaptedModel, adapt_examples, run_adaptation
from core.training.evaluate import evaluate, iter_evaluate
from core.training.meta_train import build_learner, meta_train
from core.training.progress import (
    AdaptProgress,
    CancelToken,
    EvalProgress,
    EvalResult,
    TrainProgress,
)

__all__ = [
    "AdaptProgress",
    "AdaptedModel",
    "CancelToken",
    "EvalProgress",
    "EvalResult",
    "TrainProgress",
    "adapt_examples",
    "build_learner",
    "evaluate",
    "iter_evaluate",
    "meta_train",
    "run_adaptation",
]
