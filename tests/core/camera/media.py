"""Real media for the camera tests: videos written with cv2.VideoWriter, image folders, an MJPEG server."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np


def numbered_image(i: int, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """A BGR image whose flat grey level encodes ``i`` (readable back after lossy compression)."""
    w, h = size
    img = np.full((h, w, 3), (i * 7) % 200 + 20, np.uint8)
    cv2.putText(img, str(i), (8, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    return img


def write_video(path: Path, frames: list[np.ndarray], fps: float = 20.0, fourcc: str = "MJPG") -> Path:
    """Write frames with a real cv2.VideoWriter; fails loudly if the codec is unavailable."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"cv2.VideoWriter cannot write {fourcc} to {path}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


class _Handler(BaseHTTPRequestHandler):
    server: MjpegHttpServer._Server

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        owner = self.server.owner
        while not owner.stopping.is_set():
            ok, buf = cv2.imencode(".jpg", numbered_image(owner.next_index()))
            assert ok
            data = buf.tobytes()
            head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            try:
                self.wfile.write(head + data + b"\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return  # the client went away: an IP camera just ends the response too
            time.sleep(1.0 / owner.fps)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


class MjpegHttpServer:
    """An IP-camera-like MJPEG-over-HTTP server on 127.0.0.1 (multipart/x-mixed-replace), in a thread."""

    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        owner: MjpegHttpServer

    def __init__(self, fps: float = 30.0, port: int = 0) -> None:
        self.fps = fps
        self.port = port or free_port()
        self.stopping = threading.Event()
        self._count = 0
        self._lock = threading.Lock()
        self._server: MjpegHttpServer._Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"

    def next_index(self) -> int:
        with self._lock:
            self._count += 1
            return self._count

    def start(self) -> MjpegHttpServer:
        self.stopping.clear()
        self._server = self._Server(("127.0.0.1", self.port), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
