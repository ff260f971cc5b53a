"""A logged part's evidence: the labelled examples nearest to it in the model's embedding, and the model version
that judged it (what the History view shows beside a part).

The embedding is the meta-trained model's (the base the versions were adapted from): the shipped model adapts
only a head on a frozen embedding, so the base's embedding is the live model's. Distance is the cosine
distance ``1 - cos`` between embeddings: 0 for the same picture, about 1 for unrelated ones. Embedding the
examples takes a second or two on a CPU the first time (the shipped model keeps them cached): call it off the
GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.meta.base import eval_chunks
from core.storage import ModelVersion, StorageError, Workspace
from core.storage.checkpoint import LoadedCheckpoint
from core.storage.records import Inspection

EVIDENCE_NEIGHBOURS = 3


@dataclass(frozen=True)
class Neighbour:
    """One labelled example near the part: its id, class, image (by hash) and cosine distance."""

    example_id: int
    class_name: str
    image_hash: str
    distance: float


@dataclass(frozen=True)
class PartEvidence:
    """Why a logged part got its verdict: the model version that judged it and its nearest labelled examples.

    ``neighbours`` is empty when the part's image was not kept (OK parts keep none) or no example could be
    read; ``note`` then says why.
    """

    inspection_id: int
    version: ModelVersion | None
    neighbours: tuple[Neighbour, ...]
    note: str = ""
    compared: int = 0  # labelled examples the part was compared with


def embed(checkpoint: LoadedCheckpoint, images: list[np.ndarray]) -> torch.Tensor:
    """Embeddings ``(B, D)`` of OpenCV images under the checkpoint's learner (the images as given).

    One image per forward pass, as the live classifier does: a backbone with per-batch BatchNorm statistics
    would otherwise embed an image differently depending on its batch (ADR 0001). A learner that keeps
    support embeddings (the shipped model's) serves the labelled examples from its cache.
    """
    x = checkpoint.preprocess.batch(images)
    learner = checkpoint.learner
    views = getattr(learner, "embed_views", None)
    model = learner.model
    rows = [
        views(x[i : i + 1], cached=True)[0]
        if callable(views)
        else eval_chunks(model, model.features, x[i : i + 1], 1, "input")
        for i in range(len(x))
    ]
    return torch.cat(rows).detach().cpu()


def part_evidence(
    ws: Workspace, inspection: Inspection, checkpoint: LoadedCheckpoint, k: int = EVIDENCE_NEIGHBOURS
) -> PartEvidence:
    """The model version that judged ``inspection`` and the ``k`` labelled examples nearest to its image.

    The examples are those the version was adapted on (as they were labelled then); the live training
    examples when the part was judged by no recorded version.

    Raises
    ------
    StorageError
        The workspace cannot be read.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    version = ws.models.get(inspection.model_id) if inspection.model_id is not None else None
    if inspection.image_hash is None:
        return PartEvidence(
            inspection.id, version, (), "No image was kept of this part (OK parts keep none)."
        )
    taught = (
        [(t.example_id, t.class_name, t.image_hash) for t in ws.models.training_examples(version.id)]
        if version is not None
        else [(e.id, e.class_name, e.image_hash) for e in ws.examples.list(split="train")]
    )
    candidates, images = [], []
    for example in taught:
        try:
            images.append(ws.images.load(example[2]))
        except (StorageError, ValueError):
            continue  # a missing image file is reported by the workspace check, not here
        candidates.append(example)
    if not candidates:
        return PartEvidence(inspection.id, version, (), "No labelled example of this model could be read.")
    part = embed(checkpoint, [ws.images.load(inspection.image_hash)])
    examples = embed(checkpoint, images)
    distance = (1.0 - F.cosine_similarity(examples, part, dim=1)).clamp_min(0.0)  # rounding: never "-0.00"
    order = torch.argsort(distance)[:k].tolist()
    neighbours = tuple(Neighbour(*candidates[i], float(distance[i])) for i in order)
    return PartEvidence(inspection.id, version, neighbours, compared=len(candidates))
