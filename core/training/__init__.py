"""The training engine (episodic and supervised objectives), meta-training, training recipes, evaluation and
few-shot adaptation, as generators of frozen progress records."""

from core.training.adapt import AdaptedModel, adapt_examples, run_adaptation
from core.training.engine import run_engine
from core.training.evaluate import evaluate, iter_evaluate
from core.training.meta_train import build_learner, meta_train
from core.training.progress import (
    AdaptProgress,
    CancelToken,
    EvalProgress,
    EvalResult,
    TrainProgress,
)
from core.training.recipe import TrainingRecipe

__all__ = [
    "AdaptProgress",
    "AdaptedModel",
    "CancelToken",
    "EvalProgress",
    "EvalResult",
    "TrainProgress",
    "TrainingRecipe",
    "adapt_examples",
    "build_learner",
    "evaluate",
    "iter_evaluate",
    "meta_train",
    "run_adaptation",
    "run_engine",
]
