"""Background capture: one daemon thread per source, latest-frame slot or bounded queue, reconnects, stats.

No Qt here: the GUI wraps a :class:`CaptureRunner` and turns its frames and events into signals.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from core.camera.frame import Frame
from core.camera.source import SOURCES, FrameSource

EVENT_KINDS = (
    "connected",
    "open_failed",
    "read_failed",
    "reconnecting",
    "reconnected",
    "gave_up",
    "ended",
    "abandoned",
    "stopped",
)


@dataclass(frozen=True)
class CaptureEvent:
    """Something that happened to a capture: see :data:`EVENT_KINDS`.

    ``attempt`` counts reconnect attempts (0 otherwise); ``delay_s`` is the back-off before the attempt.
    """

    kind: str
    timestamp: float
    source: str
    message: str = ""
    attempt: int = 0
    delay_s: float = 0.0


@dataclass(frozen=True)
class PropertyReport:
    """One requested camera property and what the device reported back (``None``: it cannot say)."""

    requested: float
    actual: float | None

    @property
    def accepted(self) -> bool:
        """Whether the device now reports the requested value (within 1 %)."""
        return self.actual is not None and abs(self.actual - self.requested) <= 0.01 * max(
            1.0, abs(self.requested)
        )


@dataclass(frozen=True)
class CaptureStats:
    """A snapshot of a runner's counters. Latency is capture timestamp -> handed to the consumer."""

    frames_captured: int
    frames_delivered: int
    drops: int
    fps: float
    latency_p50_ms: float
    latency_p99_ms: float
    read_failures: int
    reconnects: int
    queued: int
    blocked_s: float
    running: bool


class CaptureRunner:
    """Reads a :class:`FrameSource` on a daemon thread.

    Parameters
    ----------
    source
        An opened or unopened source, or a source string (then it is opened on the capture thread, so a slow
        camera never blocks the caller).
    mode
        ``"latest"``: a one-frame slot, the newest frame wins and overwritten unread frames count as drops (live
        view). ``"every"``: a bounded queue; when full the capture thread waits (back-pressure), nothing is
        dropped (inspect every part of a file or folder).
    queue_size
        Queue bound in ``"every"`` mode.
    properties
        Camera properties to request after each (re)connect, e.g. ``{"width": 1280, "fps": 60}``; what the
        device reported back is in :attr:`properties`.
    backoff_s, backoff_factor, backoff_max_s
        Reconnect delays: first delay, growth factor, ceiling.
    max_reconnects
        Give up after this many failed attempts in a row (``None``: never).
    on_event
        Called on the capture thread with each :class:`CaptureEvent` (keep it short; e.g. emit a Qt signal).
    """

    def __init__(
        self,
        source: FrameSource | str,
        mode: str = "latest",
        *,
        queue_size: int = 8,
        properties: dict[str, float] | None = None,
        backoff_s: float = 0.5,
        backoff_factor: float = 2.0,
        backoff_max_s: float = 8.0,
        max_reconnects: int | None = None,
        on_event: Callable[[CaptureEvent], None] | None = None,
        history: int = 1000,
    ) -> None:
        if mode not in ("latest", "every"):
            raise ValueError(f"mode must be 'latest' or 'every', got {mode!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        if backoff_s < 0 or backoff_factor < 1 or backoff_max_s < backoff_s:
            raise ValueError("need backoff_s >= 0, backoff_factor >= 1 and backoff_max_s >= backoff_s")
        self.source = SOURCES.create(source) if isinstance(source, str) else source
        self.mode = mode
        self.queue_size = queue_size
        self.requested = dict(properties or {})
        self.properties: dict[str, PropertyReport] = {}
        self._backoff = (backoff_s, backoff_factor, backoff_max_s)
        self.max_reconnects = max_reconnects
        self._on_event = on_event
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queue: collections.deque[Frame] = collections.deque()
        self._events: collections.deque[CaptureEvent] = collections.deque(maxlen=history)
        self._event_count = 0
        self._event_cursor = 0
        self._latency: collections.deque[float] = collections.deque(maxlen=history)
        self._stamps: collections.deque[float] = collections.deque(maxlen=120)
        self._counts = {"captured": 0, "delivered": 0, "drops": 0, "failures": 0, "reconnects": 0}
        self._blocked = 0.0
        self._finished = False
        self._stopped_event = False

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> CaptureRunner:
        """Start the capture thread (once)."""
        if self._thread is not None:
            raise RuntimeError(f"capture runner for {self.source.name!r} was already started")
        self._thread = threading.Thread(target=self._run, name=f"capture:{self.source.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop capturing; returns within about ``timeout`` seconds even if a read hangs.

        Returns ``True`` when the thread finished; ``False`` when it was abandoned (still blocked in the
        source; it is a daemon, releases the source and exits once the read returns).
        """
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        finished = True
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))
            finished = not self._thread.is_alive()
        if not finished:
            self._event("abandoned", f"capture thread still blocked after {timeout:.2f}s; left as daemon")
        with self._cond:
            first = not self._stopped_event
            self._stopped_event = True
            self._finished = True
            self._cond.notify_all()
        if first:
            self._event("stopped", "capture stopped")
        return finished

    def __enter__(self) -> CaptureRunner:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the capture thread is alive and not asked to stop."""
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    # -- consumer side -----------------------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> Frame | None:
        """Next frame (newest in ``latest`` mode, next in order in ``every`` mode).

        Blocks up to ``timeout`` seconds (``None``: until a frame comes or capture ends); ``None`` on time-out or
        when capture has ended and nothing is left.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._queue) or self._finished, timeout):
                return None
            if not self._queue:
                return None
            frame = self._queue.popleft()
            self._counts["delivered"] += 1
            self._latency.append(time.monotonic() - frame.timestamp)
            self._cond.notify_all()  # room in the queue for a waiting producer
            return frame

    def latest(self) -> Frame | None:
        """The frame :meth:`get` would return, without waiting; ``None`` when nothing new has arrived."""
        return self.get(timeout=0)

    def frames(self, timeout: float | None = None) -> Iterator[Frame]:
        """Yield frames until capture ends or is stopped (or ``timeout`` passes without a frame)."""
        while True:
            frame = self.get(timeout)
            if frame is None:
                return
            yield frame

    @property
    def ended(self) -> bool:
        """True once the capture thread has finished (end of stream, gave up, or stopped)."""
        return self._finished

    @property
    def stats(self) -> CaptureStats:
        """Current counters (thread-safe snapshot)."""
        with self._cond:
            lat = np.asarray(self._latency, dtype=np.float64) * 1000.0
            stamps = list(self._stamps)
            counts = dict(self._counts)
            queued = len(self._queue)
        fps = (
            (len(stamps) - 1) / (stamps[-1] - stamps[0])
            if len(stamps) > 1 and stamps[-1] > stamps[0]
            else 0.0
        )
        return CaptureStats(
            frames_captured=counts["captured"],
            frames_delivered=counts["delivered"],
            drops=counts["drops"],
            fps=float(fps),
            latency_p50_ms=float(np.percentile(lat, 50)) if lat.size else 0.0,
            latency_p99_ms=float(np.percentile(lat, 99)) if lat.size else 0.0,
            read_failures=counts["failures"],
            reconnects=counts["reconnects"],
            queued=queued,
            blocked_s=self._blocked,
            running=self.running,
        )

    @property
    def events(self) -> list[CaptureEvent]:
        """All retained events, oldest first (a copy)."""
        with self._cond:
            return list(self._events)

    def poll_events(self) -> list[CaptureEvent]:
        """Events that arrived since the previous call."""
        with self._cond:
            fresh = min(self._event_count - self._event_cursor, len(self._events))
            self._event_cursor = self._event_count
            return list(self._events)[len(self._events) - fresh :] if fresh else []

    # -- capture thread ------------------------------------------------------------------------------------
    def _event(self, kind: str, message: str = "", attempt: int = 0, delay_s: float = 0.0) -> None:
        event = CaptureEvent(kind, time.monotonic(), self.source.name, message, attempt, delay_s)
        with self._cond:
            self._events.append(event)
            self._event_count += 1
        if self._on_event is not None:
            self._on_event(event)

    def _apply_properties(self) -> None:
        if not self.requested:
            return
        actual = self.source.set_properties(self.requested)
        self.properties = {k: PropertyReport(float(v), actual.get(k)) for k, v in self.requested.items()}

    def _connect(self, reconnect: bool) -> bool:
        """(Re)open the source, with exponential back-off between tries; False when stopped or given up."""
        first, factor, ceiling = self._backoff
        delay = first
        attempt = 0
        while not self._stop.is_set():
            if reconnect:
                if self.max_reconnects is not None and attempt >= self.max_reconnects:
                    self._event("gave_up", f"no connection after {attempt} attempts", attempt)
                    return False
                attempt += 1
                self._event("reconnecting", f"attempt {attempt} in {delay:.2f}s", attempt, delay)
                if self._stop.wait(delay):
                    return False
                delay = min(delay * factor, ceiling)
            try:
                self.source.release()
                self.source.open()
            except Exception as exc:  # any open failure (SourceError, cv2.error, OSError) is retried
                self._event("open_failed", str(exc), attempt)
                reconnect = True
                continue
            self._apply_properties()
            if attempt:
                with self._cond:
                    self._counts["reconnects"] += 1
                self._event("reconnected", f"after {attempt} attempt(s)", attempt)
            else:
                self._event("connected", self.source.name)
            return True
        return False

    def _deliver(self, frame: Frame) -> None:
        with self._cond:
            self._counts["captured"] += 1
            self._stamps.append(frame.timestamp)
            if self.mode == "latest":
                self._counts["drops"] += len(self._queue)
                self._queue.clear()
            else:
                t0 = time.monotonic()
                while len(self._queue) >= self.queue_size and not self._stop.is_set():
                    self._cond.wait(0.05)
                self._blocked += time.monotonic() - t0
                if self._stop.is_set():
                    return
            self._queue.append(frame)
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            if self.source.is_open:
                self._apply_properties()
                self._event("connected", self.source.name)
            elif not self._connect(reconnect=False):
                return
            while not self._stop.is_set():
                try:
                    frame = self.source.read()
                except Exception as exc:  # a failed read of any kind is reported and leads to a reconnect
                    with self._cond:
                        self._counts["failures"] += 1
                    self._event("read_failed", str(exc))
                    if not self._connect(reconnect=True):
                        return
                    continue
                if self._stop.is_set():
                    return
                if frame is None:
                    self._event("ended", "end of stream")
                    return
                self._deliver(frame)
        finally:
            self.source.release()
            with self._cond:
                self._finished = True
                self._cond.notify_all()
