"""A real network camera protocol: MJPEG over HTTP from a local server, read through FFMPEG."""

from __future__ import annotations

import time

import numpy as np

from core.camera import CaptureRunner, open_source
from tests.core.camera.media import MjpegHttpServer, numbered_image


def test_mjpeg_stream_frames_decode_to_what_was_served() -> None:
    server = MjpegHttpServer(fps=60).start()
    try:
        with open_source(server.url) as source:
            frames = [source.read() for _ in range(5)]
    finally:
        server.stop()
    assert all(f is not None and f.image.shape == (120, 160, 3) for f in frames)
    levels = [float(np.median(f.image[:10])) for f in frames]
    served = [float(np.median(numbered_image(i)[:10])) for i in range(1, 200)]
    assert all(min(abs(level - s) for s in served) < 4 for level in levels)


def test_server_stop_gives_reconnect_events_and_restart_resumes_frames() -> None:
    server = MjpegHttpServer(fps=60).start()
    runner = CaptureRunner(server.url, mode="latest", backoff_s=0.05, backoff_max_s=0.2).start()
    try:
        assert runner.get(timeout=10) is not None
        server.stop()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(e.kind == "open_failed" for e in runner.events):
            time.sleep(0.02)
        kinds = [e.kind for e in runner.events]
        assert "read_failed" in kinds and "reconnecting" in kinds and "open_failed" in kinds
        assert runner.running  # no crash, still trying
        while runner.latest() is not None:  # drain what was buffered before the cut
            pass
        server.start()  # same port, like a camera coming back after a power cycle
        frame = runner.get(timeout=10)
        assert frame is not None
        assert "reconnected" in [e.kind for e in runner.events]
        captured = runner.stats.frames_captured
        assert runner.get(timeout=5) is not None
        assert runner.stats.frames_captured > captured
    finally:
        runner.stop()
        server.stop()
