"""The same contract test runs for every registered source scheme."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.camera import Frame, FrameSource, SourceError, list_sources, open_source
from tests.core.camera.media import MjpegHttpServer, free_port

# how to name a working source of each scheme here; None: it cannot open on this machine (no camera,
# no RTSP server, OpenCV without GStreamer, no TLS server) and must fail with a clear error instead
SpecMaker = Callable[[Path, Path, MjpegHttpServer], str]
WORKING: dict[str, SpecMaker | None] = {
    "synthetic": lambda video, folder, http: "synthetic:width=160,height=120,fps=0,seed=1",
    "file": lambda video, folder, http: f"file:{video}",
    "folder": lambda video, folder, http: f"folder:{folder}",
    "http": lambda video, folder, http: http.url,
    "https": None,
    "camera": None,
    "rtsp": None,
    "gst": None,
}
FAILING: dict[str, str] = {
    "https": "https://127.0.0.1:{port}/video.mjpg",
    "camera": "camera:97",
    "rtsp": "rtsp://127.0.0.1:{port}/stream",
    "gst": "gst:videotestsrc num-buffers=5 ! videoconvert ! appsink",
}


def test_every_registered_scheme_has_a_contract_case() -> None:
    assert set(list_sources()) == set(WORKING)


@pytest.fixture(scope="module")
def http_server() -> MjpegHttpServer:
    server = MjpegHttpServer(fps=60).start()
    yield server
    server.stop()


@pytest.mark.parametrize("scheme", sorted(WORKING))
def test_source_contract(
    scheme: str, video_path: Path, image_folder: Path, http_server: MjpegHttpServer
) -> None:
    maker = WORKING[scheme]
    if maker is None:
        spec = FAILING[scheme].format(port=free_port())
        with pytest.raises(SourceError) as info:
            open_source(spec)
        assert "could not open source" in str(info.value)
        assert spec.split("?")[0][:20] in str(info.value)
        return
    spec = maker(video_path, image_folder, http_server)
    source = open_source(spec)
    assert isinstance(source, FrameSource)
    assert source.is_open
    assert source.name
    frames = [source.read() for _ in range(3)]
    for frame in frames:
        assert isinstance(frame, Frame)
        assert frame.image.dtype == np.uint8
        assert frame.image.ndim in (2, 3)
        assert frame.image.ndim == 2 or frame.image.shape[2] == 3
        assert frame.source == source.name
    ids = [f.frame_id for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == 3
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps)
    source.release()
    assert not source.is_open
    with pytest.raises(SourceError, match="not open"):
        source.read()
    with open_source(spec) as again:
        first = next(iter(again))
        assert isinstance(first, Frame)
    assert not again.is_open
