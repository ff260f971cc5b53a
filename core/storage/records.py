"""Frozen rows handed to callers. They are snapshots: changing the workspace never changes a record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Split = Literal["train", "holdout"]
Roi = tuple[int, int, int, int]  # x, y, width, height in pixels of the full frame


@dataclass(frozen=True)
class ClassRecord:
    """One label class. ``shortcut`` is the keyboard key that assigns it; ``position`` orders the buttons."""

    id: int
    name: str
    colour: str
    is_defect: bool
    shortcut: str | None
    position: int
    created_at: float


@dataclass(frozen=True)
class Example:
    """One labelled image. ``deleted_at`` is set when soft-deleted (kept for undo and for traceability)."""

    id: int
    image_hash: str
    class_id: int
    class_name: str
    source: str
    camera_settings: dict[str, Any] = field(hash=False)
    roi: Roi | None
    created_at: float
    created_by: str
    split: Split
    deleted_at: float | None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True)
class LabelChange:
    """One undoable label operation: ``kind`` is "add", "relabel" or "delete".

    ``before``/``after`` are class ids for a relabel; for add/delete they are ``None`` where the example did
    not exist (was deleted) and the class id where it did.
    """

    kind: Literal["add", "relabel", "delete"]
    example_id: int
    before: int | None
    after: int | None


@dataclass(frozen=True)
class ModelVersion:
    """One adapted model: how it was made, from what, and the SHA-256 of its file in ``models/``."""

    id: int
    name: str
    algorithm: str
    hyperparameters: dict[str, Any] = field(hash=False)
    backbone: str
    class_names: tuple[str, ...]
    metrics: dict[str, Any] = field(hash=False)
    file_name: str
    sha256: str
    parent_id: int | None
    created_at: float
    created_by: str
    is_active: bool


@dataclass(frozen=True)
class TrainingExample:
    """An example as it was when a model version was adapted on it."""

    example_id: int
    class_name: str
    image_hash: str


@dataclass(frozen=True)
class NewInspection:
    """A verdict to log. ``time`` is wall-clock seconds since the epoch (``time.time()``); ``None`` = now.

    ``probabilities`` follow the model version's class names. ``image_hash`` names an image already stored
    with ``ImageStore.put`` (or pass ``image`` to ``InspectionLog.append_many`` to store it there).
    """

    predicted: str
    verdict: str
    probabilities: tuple[float, ...] = ()
    time: float | None = None
    part_id: int | None = None
    frame_id: int | None = None
    model_id: int | None = None
    low_confidence: bool = False
    override: str | None = None
    image_hash: str | None = None


@dataclass(frozen=True)
class Inspection:
    """A logged verdict, as stored."""

    id: int
    time: float
    part_id: int | None
    frame_id: int | None
    model_id: int | None
    predicted: str
    probabilities: tuple[float, ...]
    verdict: str
    low_confidence: bool
    override: str | None
    image_hash: str | None


@dataclass(frozen=True)
class AuditEntry:
    """One change to labels or models: who did what, when, with the before/after values in ``details``."""

    id: int
    time: float
    actor: str
    action: str
    entity: str
    entity_id: int | None
    details: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class RecoveryReport:
    """What opening the workspace cleaned up after an earlier crash."""

    temp_files_removed: tuple[str, ...] = ()
    orphan_images_removed: tuple[str, ...] = ()
    orphan_models_removed: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not (self.temp_files_removed or self.orphan_images_removed or self.orphan_models_removed)
