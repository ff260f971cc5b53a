"""The frame-source base class, the scheme registry and :func:`open_source`.

Source strings
--------------
``scheme:target?key=value,key=value`` (``&`` also separates options). The options may instead follow the
target after a comma when the target itself holds no comma: ``camera:0,backend=v4l2,width=1280``.

=================  ==========================================================================
``synthetic:``     the synthetic production line, e.g. ``synthetic:seed=3,speed=1.0,mode=area``
``camera:0``       device index through ``cv2.VideoCapture``; ``backend=any|v4l2|dshow|msmf|...``
``file:<video>``   a video file; ``loop=1`` restarts at the end
``folder:<dir>``   images in name order; ``loop=1``, ``fps=10`` (paces reads)
``http://...``     network stream (MJPEG, HLS...) through FFMPEG; the whole string is the URL
``https://...``    as ``http://``
``rtsp://...``     RTSP stream through FFMPEG; the whole string is the URL
``gst:<pipeline>`` GStreamer pipeline, passed verbatim (needs an OpenCV build with GStreamer)
=================  ==========================================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from core.camera.frame import Frame, SourceError, UnknownSourceError
from core.redact import redact_source

URL_SCHEMES = ("http", "https", "rtsp")
"""Schemes whose whole spec (``scheme://...``) is passed on verbatim as a URL."""


class FrameSource:
    """Base of every frame source: open, read, release, context manager and iteration.

    Subclasses implement :meth:`_open`, :meth:`_read` and :meth:`_release`. :meth:`_read` returns an image,
    ``None`` at the natural end of the stream, or raises :class:`SourceReadError` when a read fails.
    """

    live: bool = False
    """True for sources that run on their own clock (cameras, streams): reads fail rather than end."""

    def __init__(self, name: str) -> None:
        # The name is shown, logged and stamped on frames: never with a camera password in it.
        self.name = redact_source(name)
        self._opened = False
        self._next_id = 0

    # -- subclass hooks -------------------------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _read(self) -> Frame | None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    # -- public API ------------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` succeeded and :meth:`release` has not been called since."""
        return self._opened

    def open(self) -> FrameSource:
        """Open the source (idempotent); raises :class:`SourceError` naming the source and the reason."""
        if not self._opened:
            self._open()
            self._opened = True
        return self

    def read(self) -> Frame | None:
        """Next frame, or ``None`` at the end of the stream; raises :class:`SourceReadError` on failure."""
        if not self._opened:
            raise SourceError(f"source {self.name!r} is not open: call open() first (or use open_source())")
        return self._read()

    def release(self) -> None:
        """Free the device/file (idempotent)."""
        if self._opened:
            self._opened = False
            self._release()

    def set_properties(self, requested: dict[str, float]) -> dict[str, float | None]:
        """Ask for capture properties (``width``, ``height``, ``fps``, ``exposure``, ``gain``...).

        Returns what the source reports back for each requested name after the request (``None`` where it
        cannot say). The base class accepts nothing.
        """
        return dict.fromkeys(requested)

    @property
    def frames_delivered(self) -> int:
        """Frames stamped so far (the next frame's id)."""
        return self._next_id

    def _stamp(self) -> int:
        frame_id = self._next_id
        self._next_id += 1
        return frame_id

    def __enter__(self) -> FrameSource:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __iter__(self) -> Iterator[Frame]:
        self.open()
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def __repr__(self) -> str:
        state = "open" if self._opened else "closed"
        return f"<{type(self).__name__} {self.name!r} {state}>"


SourceFactory = Callable[[str, dict[str, str]], FrameSource]


class SourceRegistry:
    """Scheme -> factory ``(target, options) -> FrameSource``. One instance, :data:`SOURCES`, is used."""

    def __init__(self) -> None:
        self._factories: dict[str, SourceFactory] = {}

    def register(self, *schemes: str) -> Callable[[SourceFactory], SourceFactory]:
        """Decorator registering a factory under one or more schemes."""

        def deco(factory: SourceFactory) -> SourceFactory:
            for scheme in schemes:
                if scheme in self._factories:
                    raise ValueError(f"source scheme {scheme!r} is already registered")
                self._factories[scheme] = factory
            return factory

        return deco

    def schemes(self) -> list[str]:
        """Registered scheme names, sorted."""
        return sorted(self._factories)

    def create(self, spec: str) -> FrameSource:
        """Build (but do not open) the source a spec names."""
        scheme, target, options = parse_spec(spec)
        factory = self._factories.get(scheme)
        if factory is None:
            raise UnknownSourceError(
                f"unknown frame source scheme {scheme!r} in {spec!r}; known schemes: "
                f"{', '.join(self.schemes())}{_hint(spec)}"
            )
        return factory(target, options)


SOURCES = SourceRegistry()


def _hint(spec: str) -> str:
    if spec.strip().isdigit():
        return f" (did you mean 'camera:{spec.strip()}'?)"
    path = Path(spec)
    try:
        if path.is_dir():
            return f" (did you mean 'folder:{spec}'?)"
        if path.is_file():
            return f" (did you mean 'file:{spec}'?)"
    except (OSError, ValueError):  # a name too long for the file system, or one holding a NUL: not a path
        pass
    return ""


_OPTION_SPLIT = re.compile(r"[,&]")


def parse_options(text: str, spec: str) -> dict[str, str]:
    """``"a=1,b=x"`` -> ``{"a": "1", "b": "x"}``; a bare word is an error naming the spec."""
    options: dict[str, str] = {}
    for item in _OPTION_SPLIT.split(text):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"bad option {item!r} in source {spec!r}: options are key=value pairs")
        options[key.strip().lower()] = value.strip()
    return options


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split a source string into ``(scheme, target, options)``.

    ``"synthetic:seed=3"`` -> ``("synthetic", "", {"seed": "3"})``; ``"camera:0,backend=v4l2"`` ->
    ``("camera", "0", {"backend": "v4l2"})``; URLs keep their whole text as target.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a frame source string is needed (e.g. 'synthetic:' or 'camera:0'), got {spec!r}")
    spec = spec.strip()
    head, sep, rest = spec.partition(":")
    scheme = head.lower()
    if not sep:
        return scheme, "", {}
    if scheme in URL_SCHEMES or rest.startswith("//"):
        return scheme, spec, {}
    if scheme == "gst":  # pipelines are full of '=' and ','; they take no options
        return scheme, rest, {}
    target, qsep, query = rest.partition("?")
    if qsep:
        return scheme, target, parse_options(query, spec)
    if "=" in target:
        first, comma, tail = target.partition(",")
        if "=" in first:  # no target, only options: "synthetic:seed=3,speed=2"
            return scheme, "", parse_options(target, spec)
        return scheme, first, parse_options(tail, spec) if comma else {}
    return scheme, target, {}


def open_source(spec: str) -> FrameSource:
    """Build and open the source a string names (the one entry point for GUI, CLI and scripts).

    Raises
    ------
    UnknownSourceError
        The scheme is not registered (the message lists the known ones).
    SourceError
        The source would not open (the message says which and why).
    ValueError
        A malformed option.
    """
    import core.camera.sources  # noqa: F401  (registers the built-in schemes)

    source = SOURCES.create(spec)
    return source.open()


def list_sources() -> list[str]:
    """Registered source schemes."""
    import core.camera.sources  # noqa: F401

    return SOURCES.schemes()


def option(options: dict[str, str], key: str, default: Any, kind: type, spec: str) -> Any:
    """Typed option lookup with a clear error, e.g. ``option(opts, "fps", 30.0, float, spec)``."""
    if key not in options:
        return default
    raw = options[key]
    try:
        if kind is bool:
            lowered = raw.lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(raw)
            return lowered in ("1", "true", "yes", "on")
        return kind(raw)
    except ValueError:
        raise ValueError(f"option {key}={raw!r} in source {spec!r} is not a valid {kind.__name__}") from None


def check_options(options: dict[str, str], allowed: set[str], spec: str) -> None:
    """Reject options a source does not know, listing the ones it does."""
    extra = set(options) - allowed
    if extra:
        raise ValueError(
            f"unknown option(s) {sorted(extra)} for source {spec!r}; known options: {sorted(allowed)}"
        )
