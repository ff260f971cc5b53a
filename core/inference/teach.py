"""Teaching from a workspace: adapt the meta-trained model to the labelled examples and record the version.

This is what happens when an inspector presses *Adapt*: read the confirmed examples, adapt, save the adapted
classifier as a checkpoint, register it as the active model version (traceable to the exact examples), and
hand back a :class:`~core.inference.live.LiveClassifier`. It is a generator so the GUI can show progress and
cancel between steps.

Beside the classifier, the anomaly scorer (:mod:`core.inference.anomaly`) is taught from the examples of the
OK (non-defect) classes, so a defect type nobody has labelled is still rejected. With OK examples only (no
defect labelled yet) teaching gives the anomaly scorer alone: no classifier is adapted and no model version is
registered. The scorer is cheap to teach (seconds for tens of parts) and is taught again from the same
confirmed examples when the active model is restored, so it needs no file of its own in the workspace.
"""

from __future__ import annotations

import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.inference.anomaly import AnomalyConfig, AnomalyError, AnomalyScorer, find_trunk, next_defect_name
from core.inference.live import LiveClassifier
from core.inference.verdict import VerdictPolicy
from core.storage import ClassRecord, ModelVersion, Workspace
from core.storage.checkpoint import LoadedCheckpoint, load_checkpoint
from core.training.adapt import AdaptedModel, adapt_examples
from core.training.progress import AdaptProgress, Cancellable


class TeachingError(ValueError):
    """The workspace's labels cannot be used for adaptation yet (says what is missing)."""


@dataclass(frozen=True)
class TaughtModel:
    """The result of teaching: the live classifier and the model version it was recorded as."""

    classifier: LiveClassifier
    version: ModelVersion | None  # None when taught from OK examples only (anomaly scorer alone)
    adapted: AdaptedModel | None
    example_ids: tuple[int, ...] = ()  # the training examples taught, in the order of ``adapted.support_y``


def ok_images(ws: Workspace) -> tuple[str, list[np.ndarray]]:
    """Name of the OK class and the images of every non-defect class's training examples.

    The name is that of the OK class with most examples (the class a part without an anomaly is called when
    no classifier is taught).
    """
    defects = {c.name for c in ws.classes.list() if c.is_defect}
    counts: dict[str, int] = {}
    images: list[np.ndarray] = []
    for ex in ws.examples.list(split="train"):
        if ex.class_name not in defects:
            counts[ex.class_name] = counts.get(ex.class_name, 0) + 1
            images.append(ws.examples.load_image(ex))
    name = max(counts, key=lambda k: counts[k]) if counts else "ok"
    return name, images


def teach_anomaly(
    ws: Workspace, checkpoint: LoadedCheckpoint, config: AnomalyConfig | None = None
) -> AnomalyScorer | None:
    """The anomaly scorer taught from the workspace's OK examples; ``None`` when fewer than two are labelled
    or the model has no EfficientNet-Lite backbone."""
    _, images = ok_images(ws)
    if len(images) < 2:
        return None
    try:
        trunk = find_trunk(checkpoint.learner.model)
    except AnomalyError:
        return None
    sha = str(getattr(checkpoint.learner.model, "weights_sha256", "") or "")
    return AnomalyScorer.fit(images, trunk, config, weights_sha256=sha)


def labelled_classes(ws: Workspace, min_examples: int = 1) -> dict[str, int]:
    """Classes with at least ``min_examples`` live training examples, with their counts."""
    counts: dict[str, int] = {}
    for ex in ws.examples.list(split="train"):
        counts[ex.class_name] = counts.get(ex.class_name, 0) + 1
    return {name: n for name, n in counts.items() if n >= min_examples}


def register_adapted(
    ws: Workspace,
    path: Path,
    sha256: str,
    base: LoadedCheckpoint,
    adapted: AdaptedModel,
    example_ids: list[int],
    steps: int | None,
    *,
    move: bool = False,
) -> ModelVersion:
    """Record an adapted model file (written by ``adapted.save``) as the workspace's new active version
    (``move``: the file is moved in, see :meth:`core.storage.models.ModelStore.register`).

    Shared by the app's *Adapt* and ``metainspect-lab adapt --workspace``, so both leave the same record. The
    version live before it is recorded as its parent, so ``ws.models.rollback()`` can go back to it.
    """
    previous = ws.models.active()
    return ws.models.register(
        path,
        algorithm=str(base.learner.config().get("name", "")),
        class_names=adapted.class_names,
        hyperparameters={"steps": steps, **base.learner.config()},
        backbone=str(base.provenance.get("backbone", "")) if base.provenance else "",
        example_ids=example_ids,
        sha256=sha256,
        parent_id=previous.id if previous is not None else None,
        activate=True,
        move=move,
    )


def teach(
    ws: Workspace,
    checkpoint: LoadedCheckpoint | str | Path,
    *,
    steps: int | None = None,
    policy: VerdictPolicy | None = None,
    device: torch.device | str = "cpu",
    cancel: Cancellable | None = None,
    anomaly: AnomalyConfig | None = None,
) -> Generator[AdaptProgress, None, TaughtModel | None]:
    """Adapt ``checkpoint`` to the workspace's training examples; returns ``None`` when cancelled.

    With examples of the OK class(es) only, the anomaly scorer alone is taught (see the module docstring).

    Parameters
    ----------
    policy
        Verdict thresholds; its ``defect_classes`` are replaced by the workspace's defect flags.
    anomaly
        Anomaly scorer settings (default :class:`~core.inference.anomaly.AnomalyConfig`).

    Raises
    ------
    TeachingError
        Fewer than two classes have examples and fewer than two OK parts are labelled.
    """
    examples = ws.examples.list(split="train")
    per_class = labelled_classes(ws)
    defects = frozenset(c.name for c in ws.classes.list() if c.is_defect)
    base = policy or VerdictPolicy()
    ok_only = len(per_class) == 1 and not (set(per_class) & defects)
    if len(per_class) < 2 and not (ok_only and sum(per_class.values()) >= 2):
        have = ", ".join(f"{k}: {v}" for k, v in per_class.items()) or "none"
        raise TeachingError(
            "label at least two OK parts (to learn what good looks like), or parts of at least two classes, "
            f"before adapting (labelled so far: {have})"
        )
    ck = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
    ck.learner.to(device)
    if ok_only:
        yield AdaptProgress(0, 1, None, 0.0)
        scorer = teach_anomaly(ws, ck, anomaly)
        if scorer is None:
            raise TeachingError(
                "this model cannot learn from OK parts alone (it has no EfficientNet-Lite backbone); "
                "label parts of at least two classes"
            )
        name, _ = ok_images(ws)
        live = LiveClassifier(
            None, ck.preprocess, [name], VerdictPolicy(base.min_confidence, base.min_margin, defects),
            device=device, anomaly=scorer,
        )  # fmt: skip
        yield AdaptProgress(1, 1, None, 0.0)
        return TaughtModel(live, None, None)
    pairs = [(ws.examples.load_image(ex), ex.class_name) for ex in examples]
    adapted = yield from adapt_examples(ck, pairs, steps=steps, cancel=cancel)
    if adapted is None:
        return None
    with tempfile.TemporaryDirectory(dir=ws.root) as tmp:
        path = Path(tmp) / "adapted.pt"
        sha = adapted.save(path, provenance={"base_checkpoint": ck.sha256, "examples": len(examples)})
        version = register_adapted(ws, path, sha, ck, adapted, [ex.id for ex in examples], steps, move=True)
    live = LiveClassifier(
        adapted.classifier,
        adapted.preprocess,
        adapted.class_names,
        VerdictPolicy(base.min_confidence, base.min_margin, defects),
        device=device,
        anomaly=teach_anomaly(ws, ck, anomaly),
    )
    return TaughtModel(live, version, adapted, tuple(ex.id for ex in examples))


def restore_active(
    ws: Workspace,
    *,
    policy: VerdictPolicy | None = None,
    device: torch.device | str = "cpu",
    anomaly: AnomalyConfig | None = None,
) -> tuple[LiveClassifier, ModelVersion] | None:
    """Rebuild the live classifier of the workspace's active model version (after a restart), if there is one.

    The anomaly scorer is taught again from the workspace's OK examples.

    Raises
    ------
    core.storage.FileIntegrityError, core.storage.checkpoint.CheckpointError
        The version's file is missing, tampered with or corrupt.
    """
    version = ws.models.active()
    if version is None:
        return None
    ck: LoadedCheckpoint = ws.models.load(version)
    ck.learner.to(device)
    classifier = ck.adapted()
    defects = frozenset(c.name for c in ws.classes.list() if c.is_defect)
    base = policy or VerdictPolicy()
    live = LiveClassifier(
        classifier,
        ck.preprocess,
        ck.class_names,
        VerdictPolicy(base.min_confidence, base.min_margin, defects),
        device=device,
        anomaly=teach_anomaly(ws, ck, anomaly),
    )
    return live, version


#: Colour of classes made from unknown-defect parts (the verdict colour of an unknown defect).
NEW_DEFECT_COLOUR = "#8250df"


def new_defect_class_from_part(ws: Workspace, image: np.ndarray, *, source: str = "") -> ClassRecord:
    """Turn a part (typically one rejected as an unknown defect) into the first example of a new defect class.

    The class is named ``new defect N`` (rename it later), flagged as a defect and given the first free
    shortcut key 1-9, if any; the part is stored as its first training example. Teach again (*Adapt*) for the
    classifier to name it.

    Raises
    ------
    ValueError, core.storage.StorageError
        The class or the example could not be stored.
    """
    classes = ws.classes.list()
    used = {c.shortcut for c in classes}
    free = next((k for k in "123456789" if k not in used), None)
    record = ws.classes.add(
        next_defect_name([c.name for c in classes]), colour=NEW_DEFECT_COLOUR, is_defect=True, shortcut=free
    )
    ws.examples.add(image, record.name, source=source)
    return record
