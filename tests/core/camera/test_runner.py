"""CaptureRunner: latest/every modes, reconnects with back-off, bounded stop, stats and properties."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.camera import (
    CaptureEvent,
    CaptureRunner,
    Frame,
    FrameSource,
    SourceError,
    SourceReadError,
    open_source,
)
from tests.core.camera.conftest import VIDEO_FRAMES


class FlakySource(FrameSource):
    """Frames that fail to read from read ``fail_at`` on; ``bad_opens`` reopen attempts then fail too."""

    live = True

    def __init__(self, fail_at: int, bad_opens: int = 0) -> None:
        super().__init__("flaky:")
        self.fail_at = fail_at
        self.bad_opens = bad_opens
        self.reads = 0
        self.opens = 0
        self.failed = False

    def _open(self) -> None:
        self.opens += 1
        if self.failed and self.bad_opens > 0:
            self.bad_opens -= 1
            raise SourceError("flaky: device not answering")

    def _read(self) -> Frame | None:
        self.reads += 1
        if self.reads == self.fail_at:
            self.failed = True
            raise SourceReadError("flaky: cable pulled")
        return Frame(np.zeros((8, 8), np.uint8), self._stamp(), time.monotonic(), self.name)

    def _release(self) -> None:
        pass


class HangingSource(FrameSource):
    """The first read blocks until ``unblock`` is set, like a camera driver that never returns."""

    def __init__(self) -> None:
        super().__init__("hang:")
        self.unblock = threading.Event()
        self.entered = threading.Event()
        self.released = threading.Event()

    def _open(self) -> None:
        pass

    def _read(self) -> Frame | None:
        self.entered.set()
        self.unblock.wait(30)
        return None

    def _release(self) -> None:
        self.released.set()


def kinds(events: list[CaptureEvent]) -> list[str]:
    return [e.kind for e in events]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_latest_mode_keeps_newest_frame_and_counts_drops() -> None:
    source = open_source("synthetic:width=96,height=64,fps=0,noise=0")
    with CaptureRunner(source, mode="latest") as runner:
        got = []
        for _ in range(5):
            time.sleep(0.03)
            frame = runner.get(timeout=2)
            assert frame is not None
            got.append(frame.frame_id)
        stats = runner.stats
    assert got == sorted(got) and len(set(got)) == 5
    assert stats.drops > 0
    assert stats.frames_captured >= stats.frames_delivered + stats.drops - 1
    assert runner.latest() is None or runner.ended  # nothing new after stop


def test_every_mode_delivers_all_frames_in_order_with_back_pressure(video_path: Path) -> None:
    runner = CaptureRunner(open_source(f"file:{video_path}"), mode="every", queue_size=2).start()
    ids = []
    for frame in runner.frames(timeout=5):
        ids.append(frame.frame_id)
        time.sleep(0.005)
    runner.stop()
    assert ids == list(range(VIDEO_FRAMES))
    stats = runner.stats
    assert stats.drops == 0
    assert stats.blocked_s > 0
    assert "ended" in kinds(runner.events)
    assert runner.get(timeout=0.1) is None


def test_failing_source_reconnects_with_backoff_and_keeps_going() -> None:
    source = FlakySource(fail_at=5, bad_opens=2)
    seen: list[CaptureEvent] = []
    runner = CaptureRunner(source, mode="every", backoff_s=0.01, backoff_factor=2.0, on_event=seen.append)
    runner.start()
    frames = [runner.get(timeout=5) for _ in range(12)]
    runner.stop()
    assert all(f is not None for f in frames)
    events = runner.events
    order = kinds(events)
    assert order[0] == "connected"
    assert order[1:7] == [
        "read_failed",
        "reconnecting",
        "open_failed",
        "reconnecting",
        "open_failed",
        "reconnecting",
    ]
    assert order[7] == "reconnected"
    delays = [e.delay_s for e in events if e.kind == "reconnecting"]
    assert np.allclose(delays, [0.01, 0.02, 0.04])
    assert [e.attempt for e in events if e.kind == "reconnecting"] == [1, 2, 3]
    assert runner.stats.reconnects == 1 and runner.stats.read_failures == 1
    assert kinds(seen)[:8] == order[:8]  # the callback saw the same events
    assert order[-1] == "stopped"


def test_truncated_file_triggers_reconnect_and_runner_keeps_going(tmp_path: Path, video_path: Path) -> None:
    data = video_path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    runner = CaptureRunner(open_source(f"file:{cut}"), mode="every", backoff_s=0.01).start()
    frames = [runner.get(timeout=5) for _ in range(VIDEO_FRAMES + 5)]
    runner.stop()
    assert all(f is not None for f in frames)  # more frames than the cut file holds: it reconnected
    order = kinds(runner.events)
    assert {"read_failed", "reconnecting", "reconnected"} <= set(order)
    failure = next(e for e in runner.events if e.kind == "read_failed")
    assert "truncated" in failure.message


def test_stop_returns_promptly_when_a_read_hangs() -> None:
    source = HangingSource()
    runner = CaptureRunner(source).start()
    assert source.entered.wait(5)
    t0 = time.monotonic()
    finished = runner.stop(timeout=0.3)
    elapsed = time.monotonic() - t0
    assert not finished
    assert elapsed < 1.0
    assert kinds(runner.events)[-2:] == ["abandoned", "stopped"]
    assert runner.get(timeout=0.05) is None
    source.unblock.set()  # the abandoned daemon thread ends and releases the source
    assert source.released.wait(5)


def test_unopenable_source_gives_up_after_max_reconnects() -> None:
    runner = CaptureRunner("camera:97", backoff_s=0.01, max_reconnects=2).start()
    assert wait_for(lambda: runner.ended)
    order = kinds(runner.events)
    assert order == ["open_failed", "reconnecting", "open_failed", "reconnecting", "open_failed", "gave_up"]
    assert "could not open source 'camera:97'" in runner.events[0].message
    assert runner.get(timeout=0.05) is None
    runner.stop()


def test_stats_report_frame_rate_and_latency() -> None:
    runner = CaptureRunner("synthetic:width=96,height=64,fps=100", mode="every", queue_size=64).start()
    deadline = time.monotonic() + 0.8
    while time.monotonic() < deadline:
        runner.get(timeout=1)
    stats = runner.stats
    runner.stop()
    assert 60 < stats.fps < 140
    assert stats.frames_delivered > 40
    assert 0 <= stats.latency_p50_ms <= stats.latency_p99_ms < 200


def test_requested_properties_are_reported_back() -> None:
    runner = CaptureRunner(
        "synthetic:width=96,height=64,fps=0", properties={"width": 96, "height": 100, "exposure": 5}
    )
    runner.start()
    assert wait_for(lambda: "connected" in kinds(runner.events))
    runner.stop()
    props = runner.properties
    assert props["width"].accepted and props["width"].actual == 96
    assert not props["height"].accepted and props["height"].actual == 64
    assert not props["exposure"].accepted and props["exposure"].actual is None


def test_poll_events_returns_only_new_events() -> None:
    runner = CaptureRunner("synthetic:width=96,height=64,fps=0").start()
    assert wait_for(lambda: runner.stats.frames_captured > 0)
    assert kinds(runner.poll_events()) == ["connected"]
    assert runner.poll_events() == []
    runner.stop()
    assert kinds(runner.poll_events()) == ["stopped"]
    assert runner.stop() is True  # a second stop is harmless and adds no event
    assert kinds(runner.events).count("stopped") == 1
