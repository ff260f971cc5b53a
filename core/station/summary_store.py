"""The check after adapting (:class:`~core.station.summary.AdaptSummary`) kept with its model version in the
workspace (``model_summaries``), so a restart or a later activation shows that version's scores and flagged
examples again.

A stored summary is read back strictly: a row that is not exactly what :func:`summary_to_json` writes (damaged,
edited by hand, written by another release) is refused with a one-line ``ValueError`` rather than shown wrong.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from core.station.summary import AdaptSummary, ClassScore, WrongExample
from core.storage import Workspace

_CLASS = {"name": str, "examples": int, "correct": int}
_WRONG = {"example_id": int, "label": str, "predicted": str, "confidence": float}
_SUMMARY = {
    "version_id": int,
    "split": str,
    "classes": list,
    "wrong": list,
    "flagged": list,
    "unchecked": int,
}


def summary_to_json(summary: AdaptSummary) -> dict[str, Any]:
    """Plain JSON values (what :func:`summary_from_json` reads back)."""
    return asdict(summary)


def _fields(raw: Any, spec: dict[str, type], what: str) -> dict[str, Any]:
    """``raw`` as an object with exactly the fields of ``spec``, each of its type (a float may be a whole number)."""
    if not isinstance(raw, dict) or set(raw) != set(spec):
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"{what} is not an object with the fields {sorted(spec)} (got {got})")
    for key, kind in spec.items():
        value = raw[key]
        kinds = (int, float) if kind is float else (kind,)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ValueError(f"{what} field {key!r} is a {type(value).__name__}, not a {kind.__name__}")
        if kind is int and value < 0:
            raise ValueError(f"{what} field {key!r} is negative ({value})")
    return raw


def _wrong(raw: Any, what: str) -> WrongExample:
    w = _fields(raw, _WRONG, what)
    if not (math.isfinite(w["confidence"]) and 0.0 <= w["confidence"] <= 1.0):
        raise ValueError(f"{what} confidence {w['confidence']} is not between 0 and 1")
    return WrongExample(w["example_id"], w["label"], w["predicted"], float(w["confidence"]))


def summary_from_json(raw: Any) -> AdaptSummary:
    """The summary :func:`summary_to_json` wrote.

    Raises
    ------
    ValueError
        ``raw`` is not exactly that shape (a missing or extra field, a wrong type, an impossible count).
    """
    s = _fields(raw, _SUMMARY, "the summary")
    if s["split"] not in ("train", "holdout"):
        raise ValueError(f"the summary split is {s['split']!r}, not 'train' or 'holdout'")
    classes = []
    for i, c in enumerate(s["classes"]):
        c = _fields(c, _CLASS, f"class score {i}")
        if c["correct"] > c["examples"]:
            raise ValueError(f"class score {i} has {c['correct']} right of {c['examples']} examples")
        classes.append(ClassScore(c["name"], c["examples"], c["correct"]))
    return AdaptSummary(
        s["version_id"],
        s["split"],
        tuple(classes),
        tuple(_wrong(w, f"wrong example {i}") for i, w in enumerate(s["wrong"])),
        tuple(_wrong(w, f"flagged example {i}") for i, w in enumerate(s["flagged"])),
        s["unchecked"],
    )


def store_summary(ws: Workspace, summary: AdaptSummary) -> None:
    """Keep ``summary`` with its model version (replacing an earlier one).

    Raises
    ------
    core.storage.StorageError
        The version does not exist or the workspace cannot be written.
    """
    ws.models.record_summary(summary.version_id, summary_to_json(summary))


def stored_summary(ws: Workspace, version_id: int) -> AdaptSummary | None:
    """The summary kept with model version ``version_id``; ``None`` when it was never checked.

    Raises
    ------
    ValueError, core.storage.StorageError
        The stored summary is damaged (not JSON, not a summary, or one of another version).
    """
    raw = ws.models.summary(version_id)
    if raw is None:
        return None
    summary = summary_from_json(raw)
    if summary.version_id != version_id:
        raise ValueError(f"it is the summary of model version {summary.version_id}")
    return summary
