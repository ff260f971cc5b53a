"""After adapting: how the new model does on the labelled examples, per class, and which ones it gets wrong.

Every training example is judged leave-one-out: by a model adapted to the other examples, so an example
whose label disagrees with what the rest teach is *flagged* (a likely wrong label, or a part the classes cannot
tell apart); the Examples view marks them. The per-class scores come from the hold-out examples when there
are any (judged by the new model itself, which never saw them), else from the same leave-one-out judgements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.inference.live import LiveClassifier
from core.inference.teach import TaughtModel
from core.storage import Workspace
from core.storage.records import Split
from core.training.progress import Cancellable, is_cancelled


@dataclass(frozen=True)
class ClassScore:
    name: str
    examples: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.examples if self.examples else 0.0


@dataclass(frozen=True)
class WrongExample:
    """An example the model (or, for a flagged one, the model adapted without it) calls ``predicted``."""

    example_id: int
    label: str
    predicted: str
    confidence: float


@dataclass(frozen=True)
class AdaptSummary:
    """Scores of model version ``version_id`` on the ``split`` examples, and the flagged training examples.

    ``wrong`` are the scored examples it gets wrong; ``flagged`` the training examples whose leave-one-out
    prediction disagrees with their label (the same as ``wrong`` when ``split`` is ``"train"``);
    ``unchecked`` counts training examples leave-one-out cannot judge (the only example of their class).
    """

    version_id: int
    split: Split
    classes: tuple[ClassScore, ...]
    wrong: tuple[WrongExample, ...]
    flagged: tuple[WrongExample, ...] = ()
    unchecked: int = 0

    @property
    def examples(self) -> int:
        return sum(c.examples for c in self.classes)

    @property
    def accuracy(self) -> float | None:
        n = self.examples
        return sum(c.correct for c in self.classes) / n if n else None


@dataclass(frozen=True)
class Judgement:
    example_id: int
    label: str
    predicted: str
    confidence: float


def leave_one_out(taught: TaughtModel, cancel: Cancellable | None = None) -> list[Judgement] | None:
    """Each taught example judged by the model adapted without it (examples alone in their class are left
    out); ``None`` when cancelled.

    Raises
    ------
    ValueError
        ``taught`` has no adapted classifier (taught from OK parts alone).
    """
    adapted = taught.adapted
    if adapted is None:
        raise ValueError(
            "leave-one-out needs an adapted classifier; this model was taught from OK parts only"
        )
    if len(taught.example_ids) != len(adapted.support_y):
        raise ValueError(f"{len(taught.example_ids)} example ids for {len(adapted.support_y)} support images")
    probs = adapted.learner.leave_one_out(
        adapted.support_x, adapted.support_y, steps=adapted.steps, stop=lambda: is_cancelled(cancel)
    )
    if probs is None:
        return None
    out = []
    for example_id, label, row in zip(taught.example_ids, adapted.support_y.tolist(), probs, strict=True):
        if math.isnan(float(row[0])):
            continue
        best = int(row.argmax())
        out.append(
            Judgement(example_id, adapted.class_names[label], adapted.class_names[best], float(row[best]))
        )
    return out


def _scores(judged: list[Judgement]) -> tuple[tuple[ClassScore, ...], tuple[WrongExample, ...]]:
    totals: dict[str, list[int]] = {}
    wrong: list[WrongExample] = []
    for j in judged:
        score = totals.setdefault(j.label, [0, 0])
        score[0] += 1
        if j.predicted == j.label:
            score[1] += 1
        else:
            wrong.append(WrongExample(j.example_id, j.label, j.predicted, j.confidence))
    return tuple(ClassScore(name, n, ok) for name, (n, ok) in sorted(totals.items())), tuple(wrong)


def _holdout(ws: Workspace, classifier: LiveClassifier) -> list[Judgement]:
    """The hold-out examples judged by ``classifier`` (a class it does not know counts as wrong)."""
    judged = []
    for ex in ws.examples.list(split="holdout"):
        verdict = classifier.classify([ex.id], [ws.examples.load_image(ex)])[0]
        judged.append(Judgement(ex.id, ex.class_name, verdict.class_name, verdict.confidence))
    return judged


def summarize(ws: Workspace, taught: TaughtModel, cancel: Cancellable | None = None) -> AdaptSummary | None:
    """Judge the taught examples leave-one-out and score the hold-out examples (if any); ``None`` when
    cancelled.

    Raises
    ------
    ValueError
        ``taught`` has no model version (taught from OK parts only).
    """
    if taught.version is None:
        raise ValueError("only an adapted model version can be summarised")
    loo = leave_one_out(taught, cancel)
    if loo is None:
        return None
    _, flagged = _scores(loo)
    unchecked = len(taught.example_ids) - len(loo)
    held = _holdout(ws, taught.classifier)
    split: Split = "holdout" if held else "train"
    classes, wrong = _scores(held or loo)
    return AdaptSummary(taught.version.id, split, classes, wrong, flagged, unchecked)
