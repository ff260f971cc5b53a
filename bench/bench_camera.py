"""Camera pipeline benchmark: synthetic generator fps, capture latency/drops, part-trigger throughput.

Prints a markdown table. Usage::

    python bench/bench_camera.py [--seconds 3] [--busy]

``--busy`` repeats every measurement with a second process keeping another core busy (a stand-in for
meta-training next to the live view). The benchmark pins itself to one core (``sched_setaffinity``) where the
OS allows it, and OpenCV to one thread.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time

import cv2
import numpy as np

from core.camera import CaptureRunner, PartTrigger, open_source

Row = tuple[str, str, str]


def _busy_worker(stop: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    """Keep one core busy with float32 matrix products, like a small training loop."""
    os.environ["OMP_NUM_THREADS"] = "1"
    a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    while not stop.is_set():
        a = np.tanh(a @ a.T * 0.01)


def _pin(core: int) -> str:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > core:
        os.sched_setaffinity(0, {core})
        return f"core {core}"
    return "unpinned"


def generator_fps(spec: str, seconds: float) -> float:
    with open_source(spec) as source:
        for _ in range(10):
            source.read()  # warm-up: first parts, textures
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            source.read()
            n += 1
    return n / (time.perf_counter() - t0)


def runner_latency(spec: str, seconds: float, consumer_ms: float) -> tuple[float, float, float, int, int]:
    """Latest-frame runner with a consumer that works ``consumer_ms`` per frame (e.g. inference + drawing)."""
    runner = CaptureRunner(spec, mode="latest").start()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if runner.get(timeout=1.0) is not None and consumer_ms > 0:
            time.sleep(consumer_ms / 1000)
    stats = runner.stats
    runner.stop()
    return stats.fps, stats.latency_p50_ms, stats.latency_p99_ms, stats.drops, stats.frames_captured


def trigger_fps(spec: str, n_frames: int) -> tuple[float, int]:
    """Trigger time only (frames are generated outside the timed part)."""
    trigger = PartTrigger(crop_size=128)
    spent, crops = 0.0, 0
    with open_source(spec) as source:
        for _ in range(n_frames):
            frame = source.read()
            t0 = time.perf_counter()
            crops += len(trigger.feed(frame))
            spent += time.perf_counter() - t0
    return n_frames / spent, crops


def measure(seconds: float, label: str) -> list[Row]:
    rows: list[Row] = []
    sizes = ((640, 480), (1280, 1024))
    for w, h in sizes:
        fps = generator_fps(f"synthetic:width={w},height={h},fps=0", seconds)
        rows.append((f"synthetic area {w}x{h}, unpaced", f"{fps:.0f} frames/s", label))
    fps = generator_fps("synthetic:mode=line,width=1280,lines=16,fps=0", seconds)
    rows.append(("synthetic line 1280 px, 16-row blocks", f"{fps * 16:.0f} lines/s", label))
    for w, h in sizes:
        for rate in (30, 60):
            got, p50, p99, drops, captured = runner_latency(
                f"synthetic:width={w},height={h},fps={rate}", seconds, consumer_ms=5.0
            )
            rows.append(
                (
                    f"runner latest {w}x{h} @ {rate} fps, consumer 5 ms/frame",
                    f"{got:.1f} fps, latency p50 {p50:.2f} ms / p99 {p99:.2f} ms, drops {drops}/{captured}",
                    label,
                )
            )
    for w, h in sizes:
        fps, crops = trigger_fps(f"synthetic:width={w},height={h},fps=0,speed=2", 300)
        rows.append((f"part trigger {w}x{h}", f"{fps:.0f} frames/s ({crops} parts in 300 frames)", label))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each timed measurement")
    parser.add_argument("--busy", action="store_true", help="also measure with another core kept busy")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    pinned = _pin(0)
    print(
        f"# camera benchmark: {platform.machine()}, {os.cpu_count()} CPUs, benchmark {pinned}, OpenCV 1 thread"
    )
    rows = measure(args.seconds, "idle neighbour")
    if args.busy:
        stop = mp.Event()
        worker = mp.Process(target=_busy_worker, args=(stop,), daemon=True)
        worker.start()
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(worker.pid, {1})
        try:
            rows += measure(args.seconds, "other core busy")
        finally:
            stop.set()
            worker.join(5)
    print("| measurement | result | condition |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {' | '.join(row)} |")


if __name__ == "__main__":
    main()
