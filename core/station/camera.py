"""Camera health for people: the capture runner's events turned into a state with a reason, plus figures."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from core.camera import CaptureEvent, CaptureStats
from core.redact import redact_source
from core.station.events import CameraState, CameraStatus


@dataclass(frozen=True)
class CameraHealth:
    """What the status bar shows: state and reason, frames per second, latency, drops, reconnects."""

    state: CameraState
    reason: str
    fps: float
    latency_p50_ms: float
    latency_p99_ms: float
    drops: int
    reconnects: int
    frames: int

    def describe(self) -> str:
        """One line, e.g. ``Camera running · 30.0 fps · 12 ms · 3 dropped``."""
        if self.state == "running":
            text = f"Camera running · {self.fps:.1f} fps · {self.latency_p50_ms:.0f} ms"
            if self.drops:
                text += f" · {self.drops} dropped"
            if self.reconnects:
                text += f" · {self.reconnects} reconnects"
            return text
        label = {
            "reconnecting": "Camera reconnecting…",
            "lost": "Camera lost",
            "ended": "Camera source ended",
        }
        head = label.get(self.state, f"Camera {self.state}")
        return f"{head}: {self.reason}" if self.reason else head


class CameraMonitor:
    """Follows one runner's events (called on its capture thread) and reports state changes once each."""

    def __init__(self, on_change: Callable[[CameraStatus], None]) -> None:
        self._on_change = on_change
        self._lock = threading.Lock()
        self._status = CameraStatus("stopped")
        self._failure = ""

    @property
    def status(self) -> CameraStatus:
        with self._lock:
            return self._status

    def set(self, status: CameraStatus) -> None:
        with self._lock:
            if status == self._status:
                return
            self._status = status
        self._on_change(status)

    def on_event(self, event: CaptureEvent) -> None:
        kind = event.kind
        message = redact_source(event.message)
        if kind in ("open_failed", "read_failed"):
            with self._lock:
                self._failure = message or kind.replace("_", " ")
            if kind == "open_failed" and self.status.state == "connecting":
                self.set(CameraStatus("reconnecting", self._failure))
        elif kind in ("connected", "reconnected"):
            self.set(CameraStatus("running"))
        elif kind == "reconnecting":
            reason = self._failure or "the camera stopped delivering frames"
            self.set(CameraStatus("reconnecting", f"{reason} (attempt {event.attempt})"))
        elif kind == "gave_up":
            self.set(CameraStatus("lost", f"{self._failure}; {message}" if self._failure else message))
        elif kind == "ended":
            self.set(CameraStatus("ended", "end of the video or folder"))
        elif kind == "stopped" and self.status.state not in ("ended", "lost"):
            self.set(CameraStatus("stopped"))

    def health(self, stats: CaptureStats | None) -> CameraHealth:
        status = self.status
        if stats is None:
            return CameraHealth(status.state, status.reason, 0.0, 0.0, 0.0, 0, 0, 0)
        return CameraHealth(
            status.state,
            status.reason,
            stats.fps,
            stats.latency_p50_ms,
            stats.latency_p99_ms,
            stats.drops,
            stats.reconnects,
            stats.frames_captured,
        )
