"""Checks on a checkpoint's contents before any model is built from them: types, numbers and sizes.

A checkpoint may come from a USB stick. ``torch.load(weights_only=True)`` already refuses code; these checks
make sure that wrong field types (``model=5``, a list for ``provenance``) and absurd numbers (a width asking
for petabytes, a million scales) become one :class:`CheckpointError` line instead of a TypeError, a
RuntimeError or an attempt to allocate the memory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

#: Largest checkpoint file read at all (the shipped model is 330 KB; a large ResNet-12 is under 100 MB).
MAX_FILE_BYTES = 4 << 30
#: Largest whole number accepted anywhere in a model, learner or preprocessing config (widths, sizes, bins).
MAX_CONFIG_INT = 1 << 16
#: Most parameter and buffer elements a rebuilt learner may hold (1 << 30 float32 = 4 GiB).
MAX_ELEMENTS = 1 << 30
_MAX_ITEMS = 256
_MAX_DEPTH = 4


class CheckpointError(Exception):
    """A checkpoint file is missing, corrupt, truncated, not a MetaInspect checkpoint or from a newer version."""


def _check_value(value: Any, where: str, path: Path, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise CheckpointError(f"{path}: {where} is nested too deeply")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_CONFIG_INT:
            raise CheckpointError(f"{path}: {where} is {value}, beyond the {MAX_CONFIG_INT} any model needs")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise CheckpointError(f"{path}: {where} is {value}, not a finite number")
    elif isinstance(value, str):
        if len(value) > 1000:
            raise CheckpointError(f"{path}: {where} is a text of {len(value)} characters")
    elif isinstance(value, list | tuple):
        if len(value) > _MAX_ITEMS:
            raise CheckpointError(f"{path}: {where} has {len(value)} items, more than {_MAX_ITEMS}")
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]", path, depth + 1)
    elif isinstance(value, dict):
        check_config(value, where, path, depth + 1)
    else:
        raise CheckpointError(f"{path}: {where} holds a {type(value).__name__}, not a plain value")


def check_config(cfg: Any, where: str, path: Path, depth: int = 0) -> dict[str, Any]:
    """``cfg`` must be a dict of text keys and plain values with bounded numbers; returns a copy."""
    if not isinstance(cfg, dict):
        raise CheckpointError(
            f"{path}: the {where} field is a {type(cfg).__name__}, not a dict; the file is damaged"
        )
    if len(cfg) > _MAX_ITEMS:
        raise CheckpointError(f"{path}: {where} has {len(cfg)} entries, more than {_MAX_ITEMS}")
    for key, value in cfg.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: {where} has a key that is not text ({key!r})"[:300])
        _check_value(value, f"{where}.{key}", path, depth)
    return dict(cfg)


def check_payload(payload: dict[str, Any], path: Path) -> None:
    """Types of every field ``load_checkpoint`` uses (configs are checked separately by :func:`check_config`)."""
    names = payload["class_names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) > 10_000:
        raise CheckpointError(f"{path}: class_names is not a list of texts; the file is damaged")
    sd = payload["state_dict"]
    if not isinstance(sd, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()
    ):
        raise CheckpointError(f"{path}: state_dict is not a dict of named tensors; the file is damaged")
    for key in ("provenance", "training_state"):
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise CheckpointError(f"{path}: {key} is a {type(payload[key]).__name__}, not a dict")
    steps = payload.get("adapt_steps")
    if steps is not None and (type(steps) is not int or not 0 <= steps <= MAX_CONFIG_INT):
        raise CheckpointError(f"{path}: adapt_steps is {steps!r}, not a step count")
    sx, sy = payload.get("support_x"), payload.get("support_y")
    if sx is None and sy is None:
        return
    if not (isinstance(sx, torch.Tensor) and isinstance(sy, torch.Tensor)):
        raise CheckpointError(f"{path}: the support set is not a pair of tensors; the file is damaged")
    pixels_or_float = sx.is_floating_point() or sx.dtype == torch.uint8  # see core.storage.support_codec
    if sx.dim() != 4 or not pixels_or_float or sy.dim() != 1 or sy.shape[0] != sx.shape[0]:
        raise CheckpointError(
            f"{path}: the support set has shapes {tuple(sx.shape)}, {tuple(sy.shape)}; expected (B, C, S, S), (B,)"
        )
    if sy.dtype != torch.long or (sy.numel() and not (int(sy.min()) >= 0 and int(sy.max()) < len(names))):
        raise CheckpointError(f"{path}: the support labels are not class indices 0..{len(names) - 1}")


def check_weights_fit(
    learner_on_meta: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: Path
) -> None:
    """Compare the shapes a config would build (on the ``meta`` device: no memory) with the stored weights."""
    elements = sum(t.numel() for t in (*learner_on_meta.parameters(), *learner_on_meta.buffers()))
    if elements > MAX_ELEMENTS:
        raise CheckpointError(
            f"{path}: the stored config asks for {elements} weights, beyond the {MAX_ELEMENTS} this loader accepts"
        )
    want = {k: tuple(v.shape) for k, v in learner_on_meta.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state_dict.items()}
    if want != have:
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        detail = "; ".join(
            f"{label} {names[:3]}"
            for label, names in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong))
            if names
        )
        raise CheckpointError(f"{path}: the weights do not fit the stored model config ({detail})"[:400])
