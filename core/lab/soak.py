"""Whole-shift soak: the headless station on the synthetic line, with periodic adaptations, measured.

Runs what the app runs (capture runner, part trigger, live classifier, buffered verdict log, teaching on a
worker thread) without Qt, for a given time, and samples the process: resident memory, threads, open file
handles, frames dropped, and each verdict's latency (frame captured -> verdict logged). A leak shows as
growth after warm-up; the tests run it for seconds, ``python -m core.lab.soak --minutes 60`` for an hour.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.camera import CaptureRunner, PartTrigger
from core.camera.synthetic import DEFECT_CLASSES
from core.inference.pipeline import InspectionPipeline, PartResult
from core.inference.teach import teach
from core.inference.verdict import VerdictPolicy
from core.runtime import release_freed_memory
from core.storage import NewInspection, Workspace
from core.storage.checkpoint import load_checkpoint


@dataclass(frozen=True)
class SoakSample:
    """One look at the process, ``t_s`` seconds after the start."""

    t_s: float
    rss_mb: float | None
    threads: int
    open_files: int | None
    frames: int
    frames_dropped: int
    verdicts: int
    adaptations: int
    load_1m: float | None = None  # the machine's one-minute load average: the soak shares its CPUs


@dataclass(frozen=True)
class SoakReport:
    """Samples over time plus verdict latencies; the ``*_growth`` methods compare the end with warm-up."""

    samples: tuple[SoakSample, ...]
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    errors: tuple[str, ...]

    def _after(self, warmup_s: float) -> list[SoakSample]:
        kept = [s for s in self.samples if s.t_s >= warmup_s]
        return kept if len(kept) >= 2 else list(self.samples[-2:])

    def rss_growth_mb(self, warmup_s: float) -> float | None:
        kept = [s.rss_mb for s in self._after(warmup_s) if s.rss_mb is not None]
        return kept[-1] - min(kept) if kept else None

    def thread_growth(self, warmup_s: float) -> int:
        kept = self._after(warmup_s)
        return kept[-1].threads - kept[0].threads

    def file_growth(self, warmup_s: float) -> int | None:
        kept = [s.open_files for s in self._after(warmup_s) if s.open_files is not None]
        return kept[-1] - kept[0] if kept else None

    def summary(self, warmup_s: float) -> dict[str, object]:
        """The figures a soak is judged by, after ``warmup_s`` seconds: first/last/max of each gauge."""
        kept = self._after(warmup_s)

        def span(values: list[float | int | None]) -> dict[str, float | int] | None:
            known = [v for v in values if v is not None]
            return (
                {"first": known[0], "last": known[-1], "max": max(known), "min": min(known)}
                if known
                else None
            )

        last = self.samples[-1] if self.samples else None
        return {
            "warmup_s": warmup_s,
            "duration_s": last.t_s if last else 0.0,
            "rss_mb": span([s.rss_mb for s in kept]),
            "rss_growth_mb": self.rss_growth_mb(warmup_s),
            "threads": span([s.threads for s in kept]),
            "open_files": span([s.open_files for s in kept]),
            "frames": last.frames if last else 0,
            "frames_dropped": last.frames_dropped if last else 0,
            "verdicts": last.verdicts if last else 0,
            "adaptations": last.adaptations if last else 0,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "load_1m": span([s.load_1m for s in self.samples]),
            "errors": list(self.errors),
        }


def _rss_mb() -> float | None:
    try:  # Linux: current resident set (ru_maxrss would be the peak, which never falls)
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, AttributeError):
        return None


def _load_1m() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _open_files() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def run_soak(
    workspace: Path,
    duration_s: float,
    *,
    source: str = "synthetic:seed=3,defect_rate=0.5",
    checkpoint: str = "default",
    adapt_every_s: float = 60.0,
    sample_every_s: float = 5.0,
    shots: int = 2,
    on_sample: Callable[[SoakSample], None] | None = None,
) -> SoakReport:
    """Run the station for ``duration_s`` seconds in ``workspace`` (a new folder) and measure it.

    ``on_sample`` sees each sample as it is taken (a long run's figures survive if it is stopped early).
    """
    base = load_checkpoint(checkpoint)
    samples: list[SoakSample] = []
    latencies: list[float] = []
    errors: list[str] = []
    adaptations = 0
    with Workspace.open(workspace) as ws:
        for name in DEFECT_CLASSES:
            ws.classes.find(name) or ws.classes.add(name, is_defect=name != "ok")
        policy = VerdictPolicy(defect_classes=frozenset(n for n in DEFECT_CLASSES if n != "ok"))
        writer = ws.inspections.buffered_writer(max_rows=64, max_delay_s=1.0)
        lock = threading.Lock()

        def log(results: Sequence[PartResult]) -> None:
            rows = [r for r in results if r.verdict is not None]
            writer.add_many(
                NewInspection(r.verdict.class_name, r.verdict.decision.value, r.verdict.probabilities,
                              part_id=r.crop.part_id, frame_id=r.crop.frame_id)
                for r in rows if r.verdict is not None
            )  # fmt: skip
            now = time.monotonic()
            with lock:
                latencies.extend(now - r.crop.timestamp for r in rows)

        runner = CaptureRunner(source, mode="latest", backoff_s=0.5, backoff_max_s=5.0)
        pipeline = InspectionPipeline(runner, PartTrigger(crop_size=128), None, log)
        adapting: threading.Thread | None = None

        def adapt() -> None:
            nonlocal adaptations
            try:
                gen = teach(ws, base, policy=policy)
                while True:
                    next(gen)
            except StopIteration as stop:
                if stop.value is not None:
                    pipeline.set_classifier(stop.value.classifier)
                    adaptations += 1
            except Exception as exc:  # a soak records every failure and goes on, like the app
                errors.append(f"adaptation: {type(exc).__name__}: {exc}")
            finally:
                release_freed_memory()  # as the app does after each adaptation (app/session.py)

        start = last_adapt = last_sample = time.monotonic()
        stop_event = threading.Event()
        for result in pipeline.run(stop_event):
            now = time.monotonic()
            truth = result.crop.truth
            counts = ws.examples.counts()
            if truth is not None and counts.get(truth.defect_class, 0) < shots:
                ws.examples.add(result.crop.image, truth.defect_class, source=source)
            ready = len([n for n in DEFECT_CLASSES if counts.get(n, 0) >= 1]) >= 2
            idle = adapting is None or not adapting.is_alive()
            if ready and idle and (adaptations == 0 or now - last_adapt >= adapt_every_s):
                last_adapt = now
                adapting = threading.Thread(target=adapt, name="soak-adapt", daemon=True)
                adapting.start()
            if now - last_sample >= sample_every_s or now - start >= duration_s:
                last_sample = now
                stats = runner.stats
                sample = SoakSample(round(now - start, 2), _rss_mb(), threading.active_count(), _open_files(),
                                    stats.frames_captured, stats.drops, writer.written, adaptations, _load_1m())  # fmt: skip
                samples.append(sample)
                if on_sample is not None:
                    on_sample(sample)
            if now - start >= duration_s:
                stop_event.set()
        if adapting is not None:
            adapting.join(120)
        writer.close()
        if writer.problem():
            errors.append(str(writer.problem()))
    ms = np.asarray(latencies) * 1000.0
    return SoakReport(
        tuple(samples),
        float(np.percentile(ms, 50)) if ms.size else None,
        float(np.percentile(ms, 99)) if ms.size else None,
        tuple(errors),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run a soak in a temporary workspace; one JSON line per sample (stdout, and ``--jsonl`` if given),
    then one ``{"summary": ...}`` line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--adapt-every", type=float, default=300.0, help="seconds between adaptations")
    p.add_argument("--sample-every", type=float, default=30.0)
    p.add_argument("--warmup", type=float, default=300.0, help="seconds before growth is measured")
    p.add_argument("--jsonl", type=Path, default=None, help="also append every line to this file")
    args = p.parse_args(argv)

    def emit(row: dict[str, object]) -> None:
        line = json.dumps(row)
        print(line, flush=True)
        if args.jsonl is not None:
            with args.jsonl.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        report = run_soak(
            Path(tmp) / "ws",
            args.minutes * 60,
            adapt_every_s=args.adapt_every,
            sample_every_s=args.sample_every,
            on_sample=lambda sample: emit(asdict(sample)),
        )
    emit({"summary": report.summary(args.warmup)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
