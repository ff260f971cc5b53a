"""The inspection station without a window: capture, trigger, classify, log, teach, model versions, settings.

``Station`` emits plain events (:mod:`core.station.events`); the desktop app and ``metainspect-lab station``
are two faces of it.
"""

from core.station.camera import CameraHealth
from core.station.errors import StationError, describe_error
from core.station.events import (
    AdaptFinished,
    AdaptStarted,
    AdaptStep,
    AdaptSummarized,
    CameraStatus,
    ClassesChanged,
    EventHub,
    ExamplesChanged,
    Message,
    ModelActivated,
    PartInspected,
    SettingsApplied,
    StationEvent,
)
from core.station.settings import StationSettings
from core.station.station import Station
from core.station.stats import LineStats, LineSummary

__all__ = [
    "AdaptFinished",
    "AdaptStarted",
    "AdaptStep",
    "AdaptSummarized",
    "CameraHealth",
    "CameraStatus",
    "ClassesChanged",
    "EventHub",
    "ExamplesChanged",
    "LineStats",
    "LineSummary",
    "Message",
    "ModelActivated",
    "PartInspected",
    "SettingsApplied",
    "Station",
    "StationError",
    "StationEvent",
    "StationSettings",
    "describe_error",
]
