"""Model checkpoints: one ``torch.save``'d dict of tensors and plain values, loadable with ``weights_only``.

A checkpoint carries everything needed to use the model without the code that trained it: the model and
learner configs (to rebuild them through the registries), the ``state_dict``, class names, the preprocessing,
provenance (data, iterations, seed, git commit, date) and, for an adapted classifier, its labelled support
set (re-adapting on load is exact and works the same for every learner). Files are written atomically and
identified by their SHA-256.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.imaging.preprocess import Preprocess
from core.resources import resource_path
from core.storage.checkpoint_checks import (
    MAX_FILE_BYTES,
    CheckpointError,
    check_config,
    check_payload,
    check_weights_fit,
)
from core.storage.files import atomic_write_bytes
from core.storage.support_codec import pack_support, unpack_support

__all__ = [
    "CheckpointError",
    "LoadedCheckpoint",
    "load_checkpoint",
    "read_checkpoint_payload",
    "save_checkpoint",
]

FORMAT_NAME = "metainspect-checkpoint"
FORMAT_VERSION = 2
#: Version 2 may store the support set as 8-bit pixels (core.storage.support_codec); files without that stay 1.
PIXEL_SUPPORT_VERSION = 2
DEFAULT_NAME = "default"
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint read back: a ready learner plus everything that describes it.

    Attributes
    ----------
    learner
        The rebuilt ``MetaLearner`` (an ``nn.Module``) with the saved weights, in eval mode, on ``device``.
    preprocess
        How images must be prepared for this model.
    class_names
        Class names (for an adapted classifier, in label order 0..N-1).
    provenance
        Plain dict: data, iterations, seed, git commit, date, ...
    sha256
        Hex SHA-256 of the file.
    support_x, support_y
        The labelled support set ``(B, C, S, S)``, ``(B,)`` of an adapted classifier, else ``None``.
    adapt_steps
        Inner steps used when adapting to the support set (``None`` = learner default).
    training_state
        Optimizer state, iteration and RNG states for resuming meta-training (``None`` when absent).
    path
        The file that was read.
    """

    learner: nn.Module
    preprocess: Preprocess
    class_names: list[str]
    provenance: dict[str, Any]
    sha256: str
    support_x: torch.Tensor | None = None
    support_y: torch.Tensor | None = None
    adapt_steps: int | None = None
    training_state: dict[str, Any] | None = field(default=None, repr=False)
    path: Path | None = None

    @property
    def is_adapted(self) -> bool:
        """True when the file holds an adapted classifier (a support set)."""
        return self.support_x is not None

    def adapted(self) -> Any:
        """Re-adapt the learner to the stored support set and return its ``AdaptedClassifier``."""
        if self.support_x is None or self.support_y is None:
            raise CheckpointError(
                f"{self.path or 'this checkpoint'} is a meta-trained model without a support set; "
                "adapt it to labelled images first (metainspect-lab adapt)"
            )
        return self.learner.adapt(self.support_x, self.support_y, steps=self.adapt_steps)


def resolve_checkpoint_path(path_or_default: str | os.PathLike[str]) -> Path:
    """Turn ``"default"`` into the shipped model file; other values are paths.

    The shipped model is ``resources/models/default.pt`` beside the code, or inside the frozen bundle
    (``sys._MEIPASS``) for the installed app.
    """
    if str(path_or_default) != DEFAULT_NAME:
        return Path(path_or_default)
    return resource_path("models", "default.pt")


def git_commit(root: Path = _REPO_ROOT) -> str | None:
    """The source tree's git commit, or ``None`` outside a git checkout (e.g. the installed app)."""
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def save_checkpoint(
    path: str | os.PathLike[str],
    learner: nn.Module,
    *,
    preprocess: Preprocess,
    class_names: list[str],
    provenance: dict[str, Any],
    support: tuple[torch.Tensor, torch.Tensor] | None = None,
    adapt_steps: int | None = None,
    training_state: dict[str, Any] | None = None,
) -> str:
    """Write ``learner`` atomically to ``path`` and return the file's SHA-256 (hex).

    Parameters
    ----------
    path
        Target file; its folder is created. A temp file in the same folder is fsync'd and renamed over it,
        so a crash never leaves a half-written checkpoint under the final name.
    learner
        A ``MetaLearner`` with ``config()`` and a ``model`` with ``config()``.
    preprocess, class_names, provenance
        Stored as plain values; ``provenance`` gains ``date`` and ``git_commit`` when missing.
    support
        Optional labelled support set ``(B, C, S, S)`` float, ``(B,)`` long of an adapted classifier; stored
        as its 8-bit pixels when they rebuild it exactly (a quarter of the size), else as float32.
    adapt_steps
        Inner steps to use when re-adapting to ``support``.
    training_state
        Optional resume state (tensors and plain values only).
    """
    model = getattr(learner, "model", None)
    if (
        model is None
        or not callable(getattr(model, "config", None))
        or not callable(getattr(learner, "config", None))
    ):
        raise CheckpointError(f"cannot save {type(learner).__name__}: expected a MetaLearner with a model")
    support_x = None if support is None else pack_support(support[0], preprocess)
    prov = dict(provenance)
    prov.setdefault("date", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    prov.setdefault("git_commit", git_commit())
    payload: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": PIXEL_SUPPORT_VERSION
        if support_x is not None and support_x.dtype == torch.uint8
        else 1,
        "model": model.config(),
        "learner": learner.config(),
        "state_dict": {k: v.detach().to("cpu") for k, v in learner.state_dict().items()},
        "class_names": [str(c) for c in class_names],
        "preprocess": preprocess.to_dict(),
        "provenance": prov,
        "support_x": support_x,
        "support_y": None if support is None else support[1].detach().to("cpu", torch.long).contiguous(),
        "adapt_steps": adapt_steps,
        "training_state": training_state,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, data)  # temp file, fsync, rename, fsync the folder
    return hashlib.sha256(data).hexdigest()


def read_checkpoint_payload(path: Path) -> tuple[dict[str, Any], str]:
    """Read and validate the raw dict of a checkpoint file; returns it with the file's SHA-256."""
    if not path.is_file():
        if path.name == "default.pt" and path.parent.name == "models":
            raise CheckpointError(
                f"the default model {path} is not there yet; meta-train one (metainspect-lab meta-train) "
                "or pass --checkpoint PATH"
            )
        raise CheckpointError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CheckpointError(
            f"{path} is {size} bytes, larger than any MetaInspect checkpoint ({MAX_FILE_BYTES})"
        )
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # arbitrary bytes make the unpickler fail in many ways (struct.error, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable checkpoint (corrupt, truncated or not a torch file): {first[:200]}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is a torch file but not a MetaInspect checkpoint")
    version = payload.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer MetaInspect (checkpoint format {version}; this version reads up to "
            f"{FORMAT_VERSION}); update MetaInspect to load it"
        )
    missing = [k for k in ("model", "learner", "state_dict", "class_names", "preprocess") if k not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks the field(s) {missing}; the file is damaged")
    check_payload(payload, path)
    return payload, sha


def load_checkpoint(
    path_or_default: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> LoadedCheckpoint:
    """Load a checkpoint (``weights_only=True``) and rebuild its learner through the registries.

    Parameters
    ----------
    path_or_default
        A file path, or ``"default"`` for the shipped model (see :func:`resolve_checkpoint_path`).
    device
        Where to put the learner.

    Raises
    ------
    CheckpointError
        Missing file, corrupt/truncated file, not a checkpoint, newer format, unknown model or learner
        name, or weights that do not fit the stored config.
    """
    from core.meta import create_learner
    from core.models import create_model

    path = resolve_checkpoint_path(path_or_default)
    payload, sha = read_checkpoint_payload(path)
    model_cfg = check_config(payload["model"], "model", path)
    learner_cfg = check_config(payload["learner"], "learner", path)
    try:
        preprocess = Preprocess.from_dict(check_config(payload["preprocess"], "preprocess", path))
        # First on the meta device (shapes only, no memory): an absurd config is refused before allocating.
        with torch.device("meta"):
            check_weights_fit(
                create_learner(model=create_model(**model_cfg), **learner_cfg), payload["state_dict"], path
            )
        learner = create_learner(model=create_model(**model_cfg), **learner_cfg)
    except (ValueError, TypeError, KeyError, RuntimeError, NotImplementedError, OverflowError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: cannot rebuild the model ({first[:200]})") from None
    try:
        learner.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(
            f"{path}: the weights do not fit the stored model config ({first[:200]})"
        ) from None
    learner.to(device)
    learner.eval()
    return LoadedCheckpoint(
        learner=learner,
        preprocess=preprocess,
        class_names=list(payload["class_names"]),
        provenance=dict(payload.get("provenance") or {}),
        sha256=sha,
        support_x=None
        if payload.get("support_x") is None
        else unpack_support(payload["support_x"], preprocess),
        support_y=payload.get("support_y"),
        adapt_steps=payload.get("adapt_steps"),
        training_state=payload.get("training_state"),
        path=path,
    )
