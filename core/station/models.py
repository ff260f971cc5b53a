"""Turning stored model versions into live classifiers (activate, roll back, restore after a restart)."""

from __future__ import annotations

import torch

from core.inference.live import LiveClassifier
from core.inference.teach import teach_anomaly
from core.inference.verdict import VerdictPolicy
from core.storage import ModelVersion, Workspace
from core.storage.checkpoint import LoadedCheckpoint


def workspace_policy(ws: Workspace, min_confidence: float, min_margin: float) -> VerdictPolicy:
    """The verdict policy: the given thresholds, and the workspace's defect classes mean reject."""
    defects = frozenset(c.name for c in ws.classes.list() if c.is_defect)
    return VerdictPolicy(min_confidence, min_margin, defects)


def load_version(
    ws: Workspace, version: ModelVersion | int, policy: VerdictPolicy, device: torch.device | str
) -> tuple[LiveClassifier, ModelVersion]:
    """Verify and load a stored version's file and rebuild its live classifier on ``device``.

    The anomaly scorer is taught again from the workspace's OK examples (it is not stored with the version).

    Raises
    ------
    core.storage.FileIntegrityError, core.storage.checkpoint.CheckpointError, core.storage.RecordNotFoundError
        The version does not exist, or its file is missing, tampered with or corrupt.
    """
    mv = version if isinstance(version, ModelVersion) else ws.models.get(version)
    ck: LoadedCheckpoint = ws.models.load(mv)
    ck.learner.to(device)
    classifier = LiveClassifier(
        ck.adapted(),
        ck.preprocess,
        ck.class_names,
        policy,
        device=device,
        anomaly=teach_anomaly(ws, ck, None),
    )
    return classifier, mv
