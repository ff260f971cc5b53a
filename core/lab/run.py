"""``metainspect-lab run``: classify every image of a folder or zip, or every part of a video, into a CSV.

Decoding and preparing run in a small thread pool a few batches ahead of the network (OpenCV and numpy
release the GIL), so reading files overlaps with the forward pass. Verdicts are the live policy's
(:func:`core.inference.verdict.decide`). An image that cannot be decoded gets a row with its error, never a
stop.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.data import DataError, decode_image, open_image_tree
from core.imaging.preprocess import Preprocess
from core.inference.verdict import VerdictPolicy, decide
from core.lab.scoring import Scorer, run_batch
from core.storage.files import atomic_write_bytes

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv"})


@dataclass(frozen=True)
class Item:
    """One thing to classify: its name in the CSV and how to get the image (``None`` = unreadable)."""

    name: str
    load: Callable[[], np.ndarray | None]


@dataclass(frozen=True)
class RunRow:
    """One CSV row; ``error`` is set (and the rest empty) for an image that could not be classified."""

    file: str
    predicted: str
    probabilities: tuple[float, ...]
    verdict: str
    confidence: float | None
    margin: float | None
    error: str = ""


@dataclass(frozen=True)
class RunInput:
    """Items to classify and how many there are (``None`` for a video until it is read); for a video,
    ``frames_read`` tells how many frames the items so far came from."""

    items: Iterator[Item]
    total: int | None
    source: str
    frames_read: Callable[[], int] | None = None


def _member_loader(read: Callable[[], bytes]) -> Callable[[], np.ndarray | None]:
    return lambda: decode_image(read())


@contextlib.contextmanager
def open_run_input(path: str | os.PathLike[str]) -> Iterator[RunInput]:
    """Images of a folder tree / zip (any layout, sorted by name) or the parts a trigger cuts from a video.

    Raises
    ------
    DataError
        Missing path, or a folder or zip with no images.
    """
    p = Path(path)
    if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file():
        with _video_parts(p) as run_input:
            yield run_input
        return
    with open_image_tree(p) as tree:
        if not tree.members:
            raise DataError(
                f"no images found in {p}; expected image files (.png, .jpg, .bmp, ...) or a video"
            )
        items = (Item(m.name, _member_loader(m.read)) for m in tree.members)
        yield RunInput(items, len(tree.members), tree.source)


@contextlib.contextmanager
def _video_parts(path: Path) -> Iterator[RunInput]:
    """Every frame of the file through the part trigger (no frame dropped, unlike a live capture)."""
    from core.camera import PartTrigger
    from core.camera.source import open_source

    source = open_source(f"file:{path}")
    trigger = PartTrigger()

    def parts() -> Iterator[Item]:
        for frame in source:
            for crop in trigger.feed(frame):
                image = crop.image
                yield Item(f"{path.name}#frame={crop.frame_id},part={crop.part_id}", lambda im=image: im)

    try:
        yield RunInput(parts(), None, str(path), lambda: source.frames_delivered)
    finally:
        source.release()


def _prepare(item: Item, preprocess: Preprocess) -> tuple[str, np.ndarray | None, str]:
    try:
        image = item.load()
        if image is None:
            return item.name, None, "not a decodable image"
        return item.name, preprocess.prepare(image), ""
    except (OSError, ValueError, RuntimeError) as exc:  # damaged zip entry, odd image shape, ...
        return item.name, None, " ".join(f"{type(exc).__name__}: {exc}".split())


def _batches(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def classify_items(
    scorer: Scorer,
    items: Iterator[Item],
    policy: VerdictPolicy,
    *,
    batch: int | None = None,
    decode_threads: int = 2,
    prefetch: int = 2,
) -> Iterator[RunRow]:
    """Rows in input order; decoding runs ``prefetch`` batches ahead in ``decode_threads`` threads.
    ``batch``: images per forward pass (default :func:`core.lab.scoring.run_batch` of the input size)."""
    pre = scorer.preprocess
    batch = batch or run_batch(pre.image_size)
    names = tuple(scorer.class_names)
    with ThreadPoolExecutor(
        max_workers=max(1, decode_threads), thread_name_prefix="metainspect-decode"
    ) as pool:
        pending: deque[list[Future[tuple[str, np.ndarray | None, str]]]] = deque()
        chunks = _batches(items, batch)
        for chunk in chunks:
            pending.append([pool.submit(_prepare, it, pre) for it in chunk])
            if len(pending) <= prefetch:
                continue
            yield from _score(scorer, [f.result() for f in pending.popleft()], names, policy)
        while pending:
            yield from _score(scorer, [f.result() for f in pending.popleft()], names, policy)


def _score(
    scorer: Scorer,
    prepared: list[tuple[str, np.ndarray | None, str]],
    names: tuple[str, ...],
    policy: VerdictPolicy,
) -> Iterator[RunRow]:
    good = [a for _, a, _ in prepared if a is not None]
    probs = scorer.probabilities(torch.from_numpy(np.stack(good))).double().numpy() if good else None
    row = 0
    for pid, (name, arr, error) in enumerate(prepared):
        if arr is None or probs is None:
            yield RunRow(name, "", (), "", None, None, error)
            continue
        v = decide(pid, probs[row], names, policy)
        row += 1
        yield RunRow(name, v.class_name, v.probabilities, v.decision.value, v.confidence, v.margin)


def csv_header(class_names: Sequence[str]) -> list[str]:
    """Columns of the results CSV."""
    return ["file", "predicted", "verdict", "confidence", "margin", *[f"p_{c}" for c in class_names], "error"]


def rows_to_csv(rows: Sequence[RunRow], class_names: Sequence[str]) -> bytes:
    """The results CSV (UTF-8, probabilities with 6 decimals)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(csv_header(class_names))
    for r in rows:
        probs = [f"{p:.6f}" for p in r.probabilities] or [""] * len(class_names)
        conf = "" if r.confidence is None else f"{r.confidence:.6f}"
        margin = "" if r.margin is None else f"{r.margin:.6f}"
        w.writerow([r.file, r.predicted, r.verdict, conf, margin, *probs, r.error])
    return buf.getvalue().encode("utf-8")


def check_writable(folder: Path) -> None:
    """Fail early, before any long work, when ``folder`` (created if missing) cannot take a file.

    Raises
    ------
    ValueError
        One line naming the folder and the reason.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".metainspect-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"cannot write to {folder}: {exc.strerror or exc}") from None


def write_results(path: Path, rows: Sequence[RunRow], class_names: Sequence[str]) -> None:
    """Write the CSV atomically."""
    atomic_write_bytes(path, rows_to_csv(rows, class_names))
