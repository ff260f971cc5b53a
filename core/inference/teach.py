"""Teaching from a workspace: adapt the meta-trained model to the labelled examples and record the version.

This is what happens when an inspector presses *Adapt*: read the confirmed examples, adapt, save the adapted
classifier as a checkpoint, register it as the active model version (traceable to the exact examples), and
hand back a :class:`~core.inference.live.LiveClassifier`. It is a generator so the GUI can show progress and
cancel between steps.
"""

from __future__ import annotations

import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import torch

from core.inference.live import LiveClassifier
from core.inference.verdict import VerdictPolicy
from core.storage import ModelVersion, Workspace
from core.storage.checkpoint import LoadedCheckpoint, load_checkpoint
from core.training.adapt import AdaptedModel, adapt_examples
from core.training.progress import AdaptProgress, Cancellable


class TeachingError(ValueError):
    """The workspace's labels cannot be used for adaptation yet (says what is missing)."""


@dataclass(frozen=True)
class TaughtModel:
    """The result of teaching: the live classifier and the model version it was recorded as."""

    classifier: LiveClassifier
    version: ModelVersion
    adapted: AdaptedModel


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
) -> ModelVersion:
    """Record an adapted model file (written by ``adapted.save``) as the workspace's new active version.

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
    )


def teach(
    ws: Workspace,
    checkpoint: LoadedCheckpoint | str | Path,
    *,
    steps: int | None = None,
    policy: VerdictPolicy | None = None,
    device: torch.device | str = "cpu",
    cancel: Cancellable | None = None,
) -> Generator[AdaptProgress, None, TaughtModel | None]:
    """Adapt ``checkpoint`` to the workspace's training examples; returns ``None`` when cancelled.

    Parameters
    ----------
    policy
        Verdict thresholds; its ``defect_classes`` are replaced by the workspace's defect flags.

    Raises
    ------
    TeachingError
        Fewer than two classes have examples.
    """
    examples = ws.examples.list(split="train")
    per_class = labelled_classes(ws)
    if len(per_class) < 2:
        have = ", ".join(f"{k}: {v}" for k, v in per_class.items()) or "none"
        raise TeachingError(
            f"label at least one part of at least two classes before adapting (labelled so far: {have})"
        )
    ck = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
    ck.learner.to(device)
    pairs = [(ws.examples.load_image(ex), ex.class_name) for ex in examples]
    adapted = yield from adapt_examples(ck, pairs, steps=steps, cancel=cancel)
    if adapted is None:
        return None
    with tempfile.TemporaryDirectory(dir=ws.root) as tmp:
        path = Path(tmp) / "adapted.pt"
        sha = adapted.save(path, provenance={"base_checkpoint": ck.sha256, "examples": len(examples)})
        version = register_adapted(ws, path, sha, ck, adapted, [ex.id for ex in examples], steps)
    defects = frozenset(c.name for c in ws.classes.list() if c.is_defect)
    base = policy or VerdictPolicy()
    live = LiveClassifier(
        adapted.classifier,
        adapted.preprocess,
        adapted.class_names,
        VerdictPolicy(base.min_confidence, base.min_margin, defects),
        device=device,
    )
    return TaughtModel(live, version, adapted)


def restore_active(
    ws: Workspace, *, policy: VerdictPolicy | None = None, device: torch.device | str = "cpu"
) -> tuple[LiveClassifier, ModelVersion] | None:
    """Rebuild the live classifier of the workspace's active model version (after a restart), if there is one.

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
    )
    return live, version
