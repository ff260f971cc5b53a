"""Frame capture: sources behind one small interface, a background runner, line-scan and the part trigger.

``open_source(spec)`` is the one entry point (see :mod:`core.camera.source` for the spec syntax).
"""

from core.camera import sources as _sources  # noqa: F401  (registers the built-in schemes)
from core.camera.frame import Frame, PartTruth, SourceError, SourceReadError, UnknownSourceError
from core.camera.linescan import LineScanAssembler
from core.camera.runner import CaptureEvent, CaptureRunner, CaptureStats, PropertyReport
from core.camera.source import SOURCES, FrameSource, list_sources, open_source, parse_spec
from core.camera.trigger import PartCrop, PartTrigger

__all__ = [
    "SOURCES",
    "CaptureEvent",
    "CaptureRunner",
    "CaptureStats",
    "Frame",
    "FrameSource",
    "LineScanAssembler",
    "PartCrop",
    "PartTrigger",
    "PartTruth",
    "PropertyReport",
    "SourceError",
    "SourceReadError",
    "UnknownSourceError",
    "list_sources",
    "open_source",
    "parse_spec",
]
