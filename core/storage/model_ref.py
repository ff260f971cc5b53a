"""One way to name a model everywhere (``--model``, ``--checkpoint``): a file, ``default``, or a workspace version.

``default`` is the shipped model; with a workspace, ``active`` or a version number picks that model version
(its file is hash-checked before loading); anything else is a model file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from core.storage.checkpoint import DEFAULT_NAME, LoadedCheckpoint, load_checkpoint

ACTIVE = "active"


def is_version_ref(ref: str) -> bool:
    """True for ``active`` or a version number (names that only mean something inside a workspace)."""
    text = str(ref).strip()
    return text == ACTIVE or text.isdigit()


def describe_model_ref(ref: str, workspace: str | os.PathLike[str] | None = None) -> str:
    """A short human-readable name for the reference (for reports and logs)."""
    if is_version_ref(ref) and workspace is not None:
        return f"workspace {workspace}, model version {ref}"
    if str(ref) == DEFAULT_NAME:
        return "the shipped model (default)"
    return str(ref)


def load_model(
    ref: str | os.PathLike[str],
    *,
    workspace: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> LoadedCheckpoint:
    """Load the model that ``ref`` names.

    Parameters
    ----------
    ref
        ``"default"`` (the shipped model), a model file, or, with ``workspace``, ``"active"`` or a version
        number of that workspace.
    workspace
        Workspace folder; only consulted for ``"active"`` and version numbers.
    device
        Where to put the learner.

    Raises
    ------
    ValueError
        A version reference without a workspace, a workspace folder that is not one, or no active version.
    core.storage.checkpoint.CheckpointError, core.storage.StorageError
        A file that is not a model, a tampered version file, a locked workspace.
    """
    text = str(ref).strip()
    if not is_version_ref(text):
        return load_checkpoint(text if text == DEFAULT_NAME else Path(text), device=device)
    if workspace is None:
        raise ValueError(f"model {text!r} names a workspace model version; add --workspace DIR")
    from core.storage.workspace import DB_NAME, Workspace

    root = Path(workspace)
    if not (root / DB_NAME).is_file():
        # Workspace.open would create an empty workspace here; reading a model must not.
        raise ValueError(f"{root} is not a MetaInspect workspace (no {DB_NAME} in it)")
    with Workspace.open(root, cleanup=False) as ws:
        version = ws.models.active() if text == ACTIVE else ws.models.get(int(text))
        if version is None:
            raise ValueError(
                f"workspace {root} has no active model version; adapt one or name a version number"
            )
        ck = ws.models.load(version)
    ck.learner.to(device)
    return ck
