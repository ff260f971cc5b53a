"""After adapting: how the new model does on the labelled examples, per class, and which ones it gets wrong.

Scored on the hold-out examples when there are any (a fair check), else on the training examples (a sanity
check: a model that gets its own examples wrong was taught contradictory labels or a class it cannot tell).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.inference.live import LiveClassifier
from core.storage import Workspace
from core.storage.records import Split


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
    example_id: int
    label: str
    predicted: str
    confidence: float


@dataclass(frozen=True)
class AdaptSummary:
    """Scores of model version ``version_id`` on the ``split`` examples."""

    version_id: int
    split: Split
    classes: tuple[ClassScore, ...]
    wrong: tuple[WrongExample, ...]

    @property
    def examples(self) -> int:
        return sum(c.examples for c in self.classes)

    @property
    def accuracy(self) -> float | None:
        n = self.examples
        return sum(c.correct for c in self.classes) / n if n else None


def summarize(ws: Workspace, classifier: LiveClassifier, version_id: int) -> AdaptSummary:
    """Classify the hold-out examples (or, without any, the training examples) with ``classifier``.

    Examples of classes the model does not know count as wrong (predicted: the model's best guess).
    """
    split: Split = "holdout" if ws.examples.list(split="holdout") else "train"
    examples = ws.examples.list(split=split)
    totals: dict[str, list[int]] = {}
    wrong: list[WrongExample] = []
    for ex in examples:
        verdict = classifier.classify([ex.id], [ws.examples.load_image(ex)])[0]
        score = totals.setdefault(ex.class_name, [0, 0])
        score[0] += 1
        if verdict.class_name == ex.class_name:
            score[1] += 1
        else:
            wrong.append(WrongExample(ex.id, ex.class_name, verdict.class_name, verdict.confidence))
    classes = tuple(ClassScore(name, n, ok) for name, (n, ok) in sorted(totals.items()))
    return AdaptSummary(version_id, split, classes, tuple(wrong))
