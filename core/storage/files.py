"""Atomic, content-addressed files: write to a temp name, fsync, rename, fsync the folder.

A file that a database row names is always complete on disk before that row commits, so a crash can leave at
worst an unreferenced file (removed on the next open), never a row pointing at half a file.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from core.imaging.decode import decode_image
from core.imaging.image_header import PNG_MAGIC
from core.storage.errors import FileIntegrityError, StorageWriteError

TEMP_SUFFIX = ".tmp"
_CHUNK = 1 << 20
_WRITE_CHUNK = 4 << 20  # bytes written (and their writeback started) at a time


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks so large model files do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


#: ``sync_file_range`` flag: start writing the range's dirty pages, do not wait for them.
_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes of ``fd`` at ``offset`` to disk now, without waiting
    (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``, as databases smooth their checkpoints; elsewhere
    nothing). Durability still comes from the ``fsync`` at the end.

    Why: an ``fsync`` of a freshly written 25 MB model file makes the file system's journal wait for all of
    it at once, and other writers in the process wait with it; on the reference PC the window's GUI thread
    stalled most often while the adaptation worker wrote or synced files, and less with the ``fsync`` left
    out (docs/benchmarks.md). Written back chunk by chunk, the final ``fsync`` has little left to do.
    """
    fn = _sync_file_range()
    if fn is not None and length > 0:
        fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a failure only loses the head start


def _write_all(fd: int, data: bytes, offset: int) -> int:
    """Write all of ``data`` to ``fd`` (at ``offset``, where the file position is), starting each chunk's
    writeback as it goes (:func:`start_writeback`); returns the offset after it."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view[:_WRITE_CHUNK])
        start_writeback(fd, offset, written)
        view, offset = view[written:], offset + written
    return offset


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable. Windows cannot open folders; NTFS journals renames itself."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """Create ``path`` and any missing parents, fsyncing each parent so the new folders survive a power cut
    (a file renamed into a folder whose own entry was never made durable could vanish with it)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        fsync_dir(d.parent)


def _temp_name(path: Path) -> Path:
    # A leading dot and the .tmp suffix let recovery recognise leftovers of a crash by name alone.
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")


def _remove_quietly(path: Path) -> None:
    # Called while another error is already being raised: the original error is the one worth reporting.
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        exc.add_note(f"could not remove temp file {path}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one.

    Raises
    ------
    StorageWriteError
        On a full disk, a read-only folder or missing permissions; the temp file is removed.
    """
    tmp = _temp_name(path)
    try:
        ensure_dir(path.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        try:
            _write_all(fd, data, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        _remove_quietly(tmp)
        raise StorageWriteError(path, exc) from exc


def atomic_copy_file(src: Path, dst: Path) -> str:
    """Copy ``src`` to ``dst`` atomically and return the SHA-256 of the bytes written.

    The hash is computed from the bytes as copied, so it describes exactly what ``dst`` holds.
    """
    tmp = _temp_name(dst)
    digest = hashlib.sha256()
    try:
        ensure_dir(dst.parent)
        with open(src, "rb") as fin, open(tmp, "xb", buffering=0) as fout:
            offset = 0
            while chunk := fin.read(_CHUNK):
                digest.update(chunk)
                offset = _write_all(fout.fileno(), chunk, offset)
            os.fsync(fout.fileno())
        os.replace(tmp, dst)
        fsync_dir(dst.parent)
    except FileNotFoundError as exc:
        _remove_quietly(tmp)
        if exc.filename is not None and Path(exc.filename) == Path(src):
            raise
        raise StorageWriteError(dst, exc) from exc
    except OSError as exc:
        _remove_quietly(tmp)
        raise StorageWriteError(dst, exc) from exc
    return digest.hexdigest()


def encode_png(image: np.ndarray) -> bytes:
    """PNG-encode an OpenCV image.

    Parameters
    ----------
    image
        ``(H, W)`` grey or ``(H, W, 3)`` BGR (``(H, W, 1)`` and ``(H, W, 4)`` BGRA also accepted), uint8.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected an OpenCV image (numpy array), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 (OpenCV 8-bit), got dtype {image.dtype}; convert before saving"
        )
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)) or image.size == 0:
        raise ValueError(f"expected a (H, W) grey or (H, W, 3) BGR image, got shape {image.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image))
    if not ok:
        raise ValueError(f"OpenCV could not PNG-encode an image of shape {image.shape}")
    return buf.tobytes()


def to_png_bytes(image: np.ndarray | bytes) -> bytes:
    """PNG bytes for an OpenCV array or for encoded bytes (PNG kept as is, other formats re-encoded)."""
    if isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
        decoded = decode_image(data)
        if decoded.dtype != np.uint8:
            raise ValueError(
                f"only 8-bit images are stored; this one decodes to {decoded.dtype}: convert it first"
            )
        return data if data.startswith(PNG_MAGIC) else encode_png(decoded)
    return encode_png(image)


class ImageStore:
    """Content-addressed PNG files under ``root``: ``<root>/<hash[:2]>/<hash>.png``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, image_hash: str) -> Path:
        """Where the image with this SHA-256 lives (whether or not it exists)."""
        if len(image_hash) != 64 or any(c not in "0123456789abcdef" for c in image_hash):
            raise ValueError(f"not a SHA-256 hex digest: {image_hash!r}")
        return self.root / image_hash[:2] / f"{image_hash}.png"

    def put(self, image: np.ndarray | bytes) -> str:
        """Store an image durably and return its SHA-256 (of the PNG file). Storing twice is a no-op."""
        data = to_png_bytes(image)
        image_hash = sha256_bytes(data)
        path = self.path_for(image_hash)
        if not self._holds(path, image_hash):
            atomic_write_bytes(path, data)  # also repairs a damaged copy of the same content
        return image_hash

    @staticmethod
    def _holds(path: Path, image_hash: str) -> bool:
        try:
            return sha256_bytes(path.read_bytes()) == image_hash
        except FileNotFoundError:
            return False

    def read_bytes(self, image_hash: str) -> bytes:
        """The stored PNG bytes, verified against their hash."""
        path = self.path_for(image_hash)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise FileIntegrityError(path, image_hash, None) from None
        actual = sha256_bytes(data)
        if actual != image_hash:
            raise FileIntegrityError(path, image_hash, actual)
        return data

    def load(self, image_hash: str) -> np.ndarray:
        """The stored image as an OpenCV array, ``(H, W)`` grey or ``(H, W, 3)`` BGR, uint8."""
        return decode_image(self.read_bytes(image_hash), what=str(self.path_for(image_hash)))
