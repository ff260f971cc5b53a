"""The station's settings: one frozen record, changed at run time with ``Station.apply_settings``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from core.config import DEFAULT_ADAPT_STEPS, DEFAULT_MIN_CONFIDENCE, DEFAULT_MIN_MARGIN
from core.runtime import resolve_device

CaptureMode = Literal["auto", "latest", "every"]
Roi = tuple[int, int, int, int]


def check_verdict_settings(min_confidence: float, min_margin: float, adapt_steps: int) -> None:
    """Validate the thresholds and adaptation steps the station and the app's preferences share.

    Raises
    ------
    ValueError
        A threshold outside [0, 1] or steps outside 0..1000 (0 = the model's own).
    """
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence}")
    if not 0.0 <= min_margin <= 1.0:
        raise ValueError(f"min_margin must lie in [0, 1], got {min_margin}")
    if not 0 <= adapt_steps <= 1000:
        raise ValueError(f"adapt_steps must lie in 0..1000 (0 = the model's own), got {adapt_steps}")


@dataclass(frozen=True)
class StationSettings:
    """What an engineer may change while the line runs.

    Parameters
    ----------
    source
        Camera source spec (``synthetic:seed=1``, ``camera:0``, ``file:video.mp4``, ...).
    device
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    checkpoint
        The meta-trained model taught from (``default`` = the shipped one).
    min_confidence, min_margin
        Verdict thresholds: below either the part goes to CHECK.
    adapt_steps
        Inner steps when adapting; 0 = the model's own number (tuned with it).
    roi
        Region of interest ``(x, y, w, h)`` of the frame where parts are cut out; None = whole frame.
    crop_size
        Side of the square part crop in pixels.
    trigger_threshold
        Grey levels a pixel must differ from the belt to count as part.
    capture_mode
        ``latest`` (live camera: the newest frame wins), ``every`` (no frame dropped: files, folders, tests) or
        ``auto`` (``every`` for files and folders, else ``latest``).
    """

    source: str = "synthetic:seed=1,defect_rate=0.5"
    device: str = "auto"
    checkpoint: str = "default"
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    min_margin: float = DEFAULT_MIN_MARGIN
    adapt_steps: int = DEFAULT_ADAPT_STEPS or 0
    roi: Roi | None = None
    crop_size: int = 128
    trigger_threshold: float = 28.0
    capture_mode: CaptureMode = "auto"

    def __post_init__(self) -> None:
        check_verdict_settings(self.min_confidence, self.min_margin, self.adapt_steps)
        if not 8 <= self.crop_size <= 1024:
            raise ValueError(f"crop_size must lie in 8..1024 pixels, got {self.crop_size}")
        if self.trigger_threshold <= 0:
            raise ValueError(f"trigger_threshold must be > 0, got {self.trigger_threshold}")
        if self.capture_mode not in ("auto", "latest", "every"):
            raise ValueError(f"capture_mode must be auto, latest or every, got {self.capture_mode!r}")
        if self.roi is not None:
            roi = tuple(int(v) for v in self.roi)
            if len(roi) != 4 or roi[0] < 0 or roi[1] < 0 or roi[2] < 16 or roi[3] < 16:
                raise ValueError(f"roi must be (x, y, w, h) with x, y >= 0 and w, h >= 16, got {self.roi}")
            object.__setattr__(self, "roi", roi)
        resolve_device(self.device)  # an unknown or unavailable device is refused here, not at first use

    def changed(self, other: StationSettings) -> frozenset[str]:
        """Names of the fields whose values differ between ``self`` and ``other``."""
        return frozenset(f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name))


CAPTURE_FIELDS = frozenset({"source", "capture_mode"})
TRIGGER_FIELDS = frozenset({"roi", "crop_size", "trigger_threshold"})
POLICY_FIELDS = frozenset({"min_confidence", "min_margin"})
