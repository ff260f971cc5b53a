"""Plain events a :class:`~core.station.station.Station` emits, and the small hub that delivers them.

Events are frozen records delivered to subscribers on the thread that caused them (the capture thread, the
adaptation worker, or the caller's thread). A GUI turns them into queued signals; the headless face reads
them directly. Plain callbacks (no event library): the station has one publisher and few listeners, and
nothing here needs more than "call these functions".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from core.inference.pipeline import PartResult
from core.station.summary import AdaptSummary
from core.storage import ModelVersion
from core.training.progress import AdaptProgress

log = logging.getLogger(__name__)

CameraState = Literal["connecting", "running", "reconnecting", "lost", "ended", "stopped"]
Topic = Literal["camera", "model", "teach", "log", "settings", "history", "training"]
Level = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class PartInspected:
    """One part passed the camera; ``latency_s`` is capture of its frame -> verdict made."""

    result: PartResult
    latency_s: float


@dataclass(frozen=True)
class CameraStatus:
    """The camera's state changed; ``reason`` says why when it is not running (e.g. the read error)."""

    state: CameraState
    reason: str = ""


@dataclass(frozen=True)
class ModelActivated:
    """A model version went live (``version`` None: no model; parts are collected without verdicts)."""

    version: ModelVersion | None
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class ExamplesChanged:
    """Labelled examples were added, relabelled, deleted, undone or redone."""


@dataclass(frozen=True)
class ClassesChanged:
    """Classes were added or changed."""


@dataclass(frozen=True)
class AdaptStarted:
    steps: int


@dataclass(frozen=True)
class AdaptStep:
    progress: AdaptProgress


@dataclass(frozen=True)
class AdaptFinished:
    """Adaptation ended: ``version_id`` of the new live model, or None (failed or cancelled; ``message`` says)."""

    message: str
    version_id: int | None = None


@dataclass(frozen=True)
class AdaptSummarized:
    """How the live model does on the labelled examples (see :mod:`core.station.summary`): after adapting, or
    as stored with the version when it goes live again (restart, activate, roll back). ``None``: the live
    version has no stored check (or it could not be read); nothing is to be shown."""

    summary: AdaptSummary | None


@dataclass(frozen=True)
class SettingsApplied:
    """``apply_settings`` took effect; ``changed`` names the fields that differ from before."""

    changed: frozenset[str]


@dataclass(frozen=True)
class Message:
    """Something a person should read, addressed to the part of the station it concerns (``topic``)."""

    topic: Topic
    text: str
    level: Level = "error"


StationEvent = (
    PartInspected
    | CameraStatus
    | ModelActivated
    | ExamplesChanged
    | ClassesChanged
    | AdaptStarted
    | AdaptStep
    | AdaptFinished
    | AdaptSummarized
    | SettingsApplied
    | Message
)
Listener = Callable[[StationEvent], None]


class EventHub:
    """Subscribers called in order with every event; thread-safe subscribe/unsubscribe.

    A listener that raises is logged with its traceback and the others still run: a broken view must not
    stop the line (the capture thread is the caller).
    """

    def __init__(self) -> None:
        self._listeners: tuple[Listener, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add ``listener``; returns a function that removes it again."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return unsubscribe

    def emit(self, event: StationEvent) -> None:
        for listener in self._listeners:  # a snapshot: the tuple is replaced, never mutated
            try:
                listener(event)
            except Exception:
                log.exception("station event listener %r failed on %s", listener, type(event).__name__)
