"""Running figures of a station: parts, counts per verdict and class, accuracy against ground truth, latency."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from core.inference.pipeline import PartResult


@dataclass(frozen=True)
class LineSummary:
    """A snapshot of :class:`LineStats` (what ``metainspect-lab station --json`` prints)."""

    parts: int
    accuracy: float | None
    with_truth: int
    verdicts: dict[str, int] = field(hash=False)
    classes: dict[str, int] = field(hash=False)
    fps: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    elapsed_s: float

    def to_dict(self) -> dict[str, object]:
        return {
            "parts": self.parts,
            "accuracy": None if self.accuracy is None else round(self.accuracy, 4),
            "with_truth": self.with_truth,
            "verdicts": dict(self.verdicts),
            "classes": dict(self.classes),
            "fps": round(self.fps, 2),
            "latency_p50_ms": None if self.latency_p50_ms is None else round(self.latency_p50_ms, 1),
            "latency_p99_ms": None if self.latency_p99_ms is None else round(self.latency_p99_ms, 1),
            "elapsed_s": round(self.elapsed_s, 2),
        }


class LineStats:
    """Counts every part that got a verdict (thread-safe: the capture worker adds, anyone reads)."""

    def __init__(self, latency_window: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._latency: collections.deque[float] = collections.deque(maxlen=latency_window)
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._verdicts: collections.Counter[str] = collections.Counter()
            self._classes: collections.Counter[str] = collections.Counter()
            self._correct = 0
            self._with_truth = 0
            self._frames = 0
            self._latency.clear()
            self._start = time.monotonic()

    def add_frame(self) -> None:
        with self._lock:
            self._frames += 1

    def add(self, result: PartResult, latency_s: float) -> None:
        verdict = result.verdict
        if verdict is None:
            return
        with self._lock:
            self._verdicts[verdict.decision.value] += 1
            self._classes[verdict.class_name] += 1
            self._latency.append(latency_s)
            truth = result.crop.truth
            if truth is not None:
                self._with_truth += 1
                self._correct += int(truth.defect_class == verdict.class_name)

    @property
    def parts(self) -> int:
        with self._lock:
            return sum(self._verdicts.values())

    def summary(self) -> LineSummary:
        with self._lock:
            lat = np.asarray(self._latency, dtype=np.float64) * 1000.0
            elapsed = time.monotonic() - self._start
            return LineSummary(
                parts=sum(self._verdicts.values()),
                accuracy=self._correct / self._with_truth if self._with_truth else None,
                with_truth=self._with_truth,
                verdicts=dict(self._verdicts),
                classes=dict(self._classes),
                fps=self._frames / elapsed if elapsed > 0 else 0.0,
                latency_p50_ms=float(np.percentile(lat, 50)) if lat.size else None,
                latency_p99_ms=float(np.percentile(lat, 99)) if lat.size else None,
                elapsed_s=elapsed,
            )
