"""Sources read through ``cv2.VideoCapture``: device cameras, network streams, GStreamer and video files."""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2

from core.camera.frame import Frame, SourceError, SourceReadError
from core.camera.source import SOURCES, FrameSource, check_options, option

BACKENDS: dict[str, int] = {
    "any": cv2.CAP_ANY,
    "v4l2": cv2.CAP_V4L2,
    "dshow": cv2.CAP_DSHOW,
    "msmf": cv2.CAP_MSMF,
    "avfoundation": cv2.CAP_AVFOUNDATION,
    "gstreamer": cv2.CAP_GSTREAMER,
    "ffmpeg": cv2.CAP_FFMPEG,
}
"""Backend names accepted by the ``backend=`` option."""

PROPERTIES: dict[str, int] = {
    "width": cv2.CAP_PROP_FRAME_WIDTH,
    "height": cv2.CAP_PROP_FRAME_HEIGHT,
    "fps": cv2.CAP_PROP_FPS,
    "exposure": cv2.CAP_PROP_EXPOSURE,
    "auto_exposure": cv2.CAP_PROP_AUTO_EXPOSURE,
    "gain": cv2.CAP_PROP_GAIN,
    "brightness": cv2.CAP_PROP_BRIGHTNESS,
    "contrast": cv2.CAP_PROP_CONTRAST,
    "focus": cv2.CAP_PROP_FOCUS,
    "autofocus": cv2.CAP_PROP_AUTOFOCUS,
    "buffersize": cv2.CAP_PROP_BUFFERSIZE,
}
"""Property names accepted by :meth:`OpenCVSource.set_properties` and as source options."""

_COMMON_OPTIONS = {"backend", "open_timeout_ms", "read_timeout_ms", *PROPERTIES}


def _backend(options: dict[str, str], default: str, spec: str) -> tuple[str, int]:
    name = options.get("backend", default).lower()
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r} in source {spec!r}; known backends: {sorted(BACKENDS)}")
    return name, BACKENDS[name]


class OpenCVSource(FrameSource):
    """A ``cv2.VideoCapture`` behind the :class:`FrameSource` interface.

    Parameters
    ----------
    name
        Source name (the spec).
    target
        What ``cv2.VideoCapture`` opens: a device index, URL, pipeline or path.
    backend
        ``(name, cv2.CAP_*)`` pair.
    properties
        Properties requested right after each open (see :data:`PROPERTIES`).
    open_timeout_ms, read_timeout_ms
        Passed to backends that honour them (FFMPEG, some cameras) so a dead stream cannot block forever.
    """

    live = True

    def __init__(
        self,
        name: str,
        target: int | str,
        backend: tuple[str, int],
        properties: dict[str, float] | None = None,
        open_timeout_ms: int = 5000,
        read_timeout_ms: int = 5000,
    ) -> None:
        super().__init__(name)
        self.target = target
        self.backend_name, self.backend = backend
        self.requested = dict(properties or {})
        self.accepted: dict[str, float | None] = {}
        self._timeouts = (open_timeout_ms, read_timeout_ms)
        self._cap: cv2.VideoCapture | None = None

    def _why_not(self) -> str:
        return "the device is missing, busy or the backend cannot open it"

    def _open(self) -> None:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            self._timeouts[0],
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            self._timeouts[1],
        ]
        cap = cv2.VideoCapture(self.target, self.backend, params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"could not open source {self.name!r} (backend {self.backend_name}): {self._why_not()}"
            )
        self._cap = cap
        if self.requested:
            self.accepted = self.set_properties(self.requested)

    def _read(self) -> Frame | None:
        if self._cap is None:
            raise SourceReadError(f"source {self.name!r} has no open capture")
        ok, image = self._cap.read()
        stamp = time.monotonic()
        if not ok or image is None:
            raise SourceReadError(f"read failed on {self.name!r}: stream interrupted or device lost")
        return Frame(image=image, frame_id=self._stamp(), timestamp=stamp, source=self.name)

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def set_properties(self, requested: dict[str, float]) -> dict[str, float | None]:
        """Request properties through ``cap.set`` and read back what the device actually uses.

        Returns ``{name: actual value or None}``; compare with ``requested`` to see what was refused.
        """
        unknown = set(requested) - set(PROPERTIES)
        if unknown:
            raise ValueError(f"unknown camera properties {sorted(unknown)}; known: {sorted(PROPERTIES)}")
        if self._cap is None:
            self.requested.update(requested)
            return dict.fromkeys(requested)
        actual: dict[str, float | None] = {}
        for name, value in requested.items():
            prop = PROPERTIES[name]
            self._cap.set(prop, float(value))
            got = float(self._cap.get(prop))
            # cv2 reports 0 (or -1) for properties a backend does not expose at all
            actual[name] = got if got not in (0.0, -1.0) or float(value) in (0.0, -1.0) else None
        self.accepted.update(actual)
        return actual


def _properties(options: dict[str, str], spec: str) -> dict[str, float]:
    return {k: option(options, k, 0.0, float, spec) for k in PROPERTIES if k in options}


@SOURCES.register("camera")
def _camera(target: str, options: dict[str, str]) -> FrameSource:
    spec = f"camera:{target}"
    check_options(options, _COMMON_OPTIONS, spec)
    if not target.strip().isdigit():
        raise ValueError(f"camera source needs a device index such as 'camera:0', got {spec!r}")
    return OpenCVSource(
        spec,
        int(target),
        _backend(options, "any", spec),
        _properties(options, spec),
        option(options, "open_timeout_ms", 5000, int, spec),
        option(options, "read_timeout_ms", 5000, int, spec),
    )


class StreamSource(OpenCVSource):
    """A network stream (``http://``, ``https://``, ``rtsp://``) read through FFMPEG."""

    def _why_not(self) -> str:
        return "the server is unreachable, refused the connection or sent no decodable video"


@SOURCES.register(*("http", "https", "rtsp"))
def _stream(target: str, options: dict[str, str]) -> FrameSource:
    return StreamSource(
        target, target, ("ffmpeg", cv2.CAP_FFMPEG), open_timeout_ms=5000, read_timeout_ms=5000
    )


class GStreamerSource(OpenCVSource):
    """A GStreamer pipeline ending in ``appsink``."""

    def _why_not(self) -> str:
        if re.search(r"GStreamer:\s+NO", cv2.getBuildInformation()):
            return "this OpenCV build has no GStreamer support (opencv-python-headless ships without it)"
        return "the pipeline failed to start (check it with gst-launch-1.0)"


@SOURCES.register("gst")
def _gst(target: str, options: dict[str, str]) -> FrameSource:
    if not target.strip():
        raise ValueError("gst source needs a pipeline: 'gst:videotestsrc ! videoconvert ! appsink'")
    return GStreamerSource(f"gst:{target}", target, ("gstreamer", cv2.CAP_GSTREAMER))


class FileSource(OpenCVSource):
    """A video file. Reads end with ``None`` at the last frame; ``loop=True`` starts again instead.

    A read that fails before the frame count the container announces raises :class:`SourceReadError`
    (truncated or corrupt file), so a runner reports it and reconnects.
    """

    live = False

    def __init__(self, name: str, path: Path, backend: tuple[str, int], loop: bool = False) -> None:
        super().__init__(name, str(path), backend)
        self.path = path
        self.loop = loop
        self.frame_count = 0
        self.fps = 0.0
        self._position = 0

    def _why_not(self) -> str:
        if not self.path.exists():
            return f"file {self.path} does not exist"
        if not self.path.is_file():
            return f"{self.path} is not a file"
        return "OpenCV cannot decode it (unsupported codec or not a video)"

    def _open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"could not open source {self.name!r}: {self._why_not()}")
        super()._open()
        assert self._cap is not None
        self.frame_count = max(int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        self._position = 0

    def _read(self) -> Frame | None:
        assert self._cap is not None
        ok, image = self._cap.read()
        if not ok and self.loop and self._position > 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._position = 0
            ok, image = self._cap.read()
        if not ok or image is None:
            if self.frame_count and self._position < self.frame_count:
                raise SourceReadError(
                    f"{self.name!r} stopped at frame {self._position} of {self.frame_count}: "
                    "the file is truncated or corrupt"
                )
            return None
        self._position += 1
        return Frame(image=image, frame_id=self._stamp(), timestamp=time.monotonic(), source=self.name)


@SOURCES.register("file")
def _file(target: str, options: dict[str, str]) -> FrameSource:
    spec = f"file:{target}"
    check_options(options, {"loop", "backend"}, spec)
    if not target:
        raise ValueError("file source needs a path: 'file:/path/to/video.mp4'")
    return FileSource(
        spec,
        Path(target).expanduser(),
        _backend(options, "any", spec),
        option(options, "loop", False, bool, spec),
    )
