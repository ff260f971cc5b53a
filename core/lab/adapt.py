"""``metainspect-lab adapt``: the app's adaptation, on K labelled images per class from a folder or zip.

The adaptation itself is :func:`core.training.adapt.adapt_examples` with :data:`DEFAULT_ADAPT_STEPS`, the
code and default the app's *Adapt* button runs. The model file records the images it was adapted on (file,
class and :func:`core.data.content_hash`), so ``metainspect-lab report`` can leave them out of the scoring.
With a workspace, the images become labelled examples there and the model its new active version, recorded
as the app records its own (:func:`core.inference.teach.register_adapted`).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.config import DEFAULT_ADAPT_STEPS
from core.data import DataError, ImageMember, ImageTree, content_hash, decode_image, open_image_tree
from core.lab.metrics import find_ok_class
from core.storage.checkpoint import LoadedCheckpoint
from core.training.adapt import AdaptedModel, adapt_examples
from core.training.progress import AdaptProgress, Cancellable


@dataclass(frozen=True)
class SupportImage:
    """One image of the support set: where it came from and its content hash."""

    file: str
    class_name: str
    sha256: str
    data: bytes
    image: np.ndarray

    def record(self) -> dict[str, str]:
        """What the model file keeps about it."""
        return {"file": self.file, "class": self.class_name, "sha256": self.sha256}


@dataclass(frozen=True)
class LabAdaptResult:
    """What ``adapt`` made: the file, its hash, the support set and (with a workspace) the version id."""

    out: Path
    sha256: str
    class_names: list[str]
    support: list[SupportImage]
    skipped: list[tuple[str, str]]
    version_id: int | None

    def summary(self) -> dict[str, Any]:
        counts = {c: sum(1 for s in self.support if s.class_name == c) for c in self.class_names}
        return {
            "out": str(self.out), "sha256": self.sha256, "classes": self.class_names, "support": counts,
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped], "model_version": self.version_id,
        }  # fmt: skip


def pick_support(tree: ImageTree, shots: int, seed: int) -> tuple[list[SupportImage], list[tuple[str, str]]]:
    """``shots`` decodable images per class in a seeded random order (0 = all), and the files skipped.

    Raises
    ------
    DataError
        Fewer than two class folders, or a class with fewer readable images than ``shots``.
    """
    if shots < 0:
        raise ValueError(f"--shots must be 0 (all) or more, got {shots}")
    if len(tree.class_names) < 2:
        raise DataError(
            f"{tree.source} has {len(tree.class_names)} class folder(s) of images; adaptation needs at least two"
        )
    rng = np.random.default_rng(seed)
    support: list[SupportImage] = []
    skipped: list[tuple[str, str]] = []
    for name, files in zip(tree.class_names, tree.class_files, strict=True):
        chosen = 0
        for i in rng.permutation(len(files)):
            if shots and chosen == shots:
                break
            member: ImageMember = files[int(i)]
            data = member.read()
            image = decode_image(data)
            if image is None:
                skipped.append((member.name, "not a decodable image"))
                continue
            support.append(SupportImage(member.name, name, content_hash(data), data, image))
            chosen += 1
        if chosen == 0 or (shots and chosen < shots):
            raise DataError(f"class {name!r} has {chosen} readable image(s), fewer than --shots {shots or 1}")
    return support, skipped


def lab_adapt(
    base: LoadedCheckpoint,
    support_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    shots: int,
    seed: int = 0,
    steps: int | None = DEFAULT_ADAPT_STEPS,
    subdir: str | None = None,
    base_ref: str = "",
    workspace: str | os.PathLike[str] | None = None,
    ok_class: str | None = None,
    cancel: Cancellable | None = None,
) -> Generator[AdaptProgress, None, LabAdaptResult | None]:
    """Adapt ``base`` to ``shots`` images per class of ``support_path`` and save the model to ``out``.

    Yields the adaptation's :class:`AdaptProgress` records; returns ``None`` when cancelled (nothing written).
    """
    with open_image_tree(support_path, subdir=subdir) as tree:
        support, skipped = pick_support(tree, shots, seed)
        source = tree.source
    pairs = [(s.image, s.class_name) for s in support]
    adapted: AdaptedModel | None = yield from adapt_examples(base, pairs, steps=steps, cancel=cancel)
    if adapted is None:
        return None
    provenance = {
        "base_checkpoint": base.sha256,
        "base_model": base_ref or str(base.path),
        "data": source,
        "shots": shots,
        "seed": seed,
        "support_images": [s.record() for s in support],
    }
    target = Path(out)
    sha = adapted.save(target, provenance)
    version_id = None
    if workspace is not None:
        version_id = _record_in_workspace(workspace, target, sha, base, adapted, support, steps, ok_class)
    return LabAdaptResult(target, sha, adapted.class_names, support, skipped, version_id)


def _record_in_workspace(
    root: str | os.PathLike[str],
    path: Path,
    sha: str,
    base: LoadedCheckpoint,
    adapted: AdaptedModel,
    support: list[SupportImage],
    steps: int | None,
    ok_class: str | None,
) -> int:
    from core.inference.teach import register_adapted
    from core.storage.workspace import Workspace

    ok = find_ok_class(adapted.class_names, ok_class)
    with Workspace.open(root) as ws:
        for name in adapted.class_names:
            # a class new to the workspace is a defect unless it is the OK class; existing flags stay
            ws.classes.ensure(name, is_defect=ok is not None and name != ok)
        ids = [
            ws.examples.add(s.data, s.class_name, source=f"lab:{s.file}", undoable=False).id for s in support
        ]
        return register_adapted(ws, path, sha, base, adapted, ids, steps).id
