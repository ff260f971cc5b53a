"""Workspace storage benchmark: inspection-log throughput, the "counts per class, last hour" query at scale,
and the CPU cost of logging a live line's verdicts.

Usage::

    python bench/bench_storage.py [--rows 1000000] [--live-seconds 30] [--rate 60] [--dir PATH]

Prints one markdown table. The workspace is created in a temp folder (removed afterwards) unless ``--dir``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.storage import BufferedInspectionWriter, NewInspection, Workspace

CLASSES = ("ok", "scratch", "spot", "crack", "dent")
VERDICT = {"ok": "OK", "scratch": "REJECT", "spot": "REJECT", "crack": "REJECT", "dent": "CHECK"}


def _rows(rng: np.random.Generator, n: int, t0: float, rate: float, part0: int) -> list[NewInspection]:
    probs = rng.dirichlet(np.ones(len(CLASSES)), size=n)
    top = probs.argmax(axis=1)
    return [
        NewInspection(
            predicted=CLASSES[k],
            verdict=VERDICT[CLASSES[k]],
            probabilities=tuple(p.tolist()),
            time=t0 + i / rate,
            part_id=part0 + i,
            frame_id=3 * (part0 + i),
            model_id=None,
            low_confidence=bool(p[k] < 0.6),
        )
        for i, (k, p) in enumerate(zip(top, probs, strict=True))
    ]


def bench_batches(ws: Workspace, rng: np.random.Generator) -> list[tuple[str, str]]:
    out = []
    for batch in (1, 10, 100, 1000):
        n_batches = max(3, 2000 // batch) if batch > 1 else 100
        rows = _rows(rng, batch * n_batches, time.time() - 10 * 86400, 60.0, 0)
        t = time.perf_counter()
        for i in range(n_batches):
            ws.inspections.append_many(rows[i * batch : (i + 1) * batch])
        dt = time.perf_counter() - t
        out.append(
            (
                f"append rows/s, batch {batch} (one fsync'd transaction per batch)",
                f"{batch * n_batches / dt:,.0f}",
            )
        )
    return out


def fill(ws: Workspace, rng: np.random.Generator, rows: int, rate: float) -> tuple[float, float]:
    """Append ``rows`` verdicts at ``rate``/s ending now; returns (rows/s while filling, end time)."""
    now = time.time()
    t0 = now - rows / rate
    chunk = 10_000
    t = time.perf_counter()
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        ws.inspections.append_many(_rows(rng, n, t0 + start / rate, rate, start))
    return rows / (time.perf_counter() - t), now


def bench_query(ws: Workspace, now: float, repeats: int = 20) -> tuple[float, float, int]:
    """(first, median) milliseconds of counts_by_class over the last hour, and the rows it counted."""
    times = []
    counted = 0
    for _ in range(repeats):
        t = time.perf_counter()
        counts = ws.inspections.counts_by_class(now - 3600, now)
        times.append((time.perf_counter() - t) * 1000)
        counted = sum(counts.values())
    return times[0], statistics.median(times), counted


def bench_live(
    ws: Workspace, rng: np.random.Generator, seconds: float, rate: float
) -> tuple[float, float, int]:
    """CPU % of one core for logging ``rate`` verdicts/s through the buffered writer, and for the bare loop."""

    def loop(writer: BufferedInspectionWriter | None) -> tuple[float, int]:
        pool = _rows(rng, int(seconds * rate) + 1, time.time(), rate, 10**8)
        cpu0, wall0 = time.process_time(), time.monotonic()
        period = 1.0 / rate
        sent = 0
        next_t = wall0
        while time.monotonic() - wall0 < seconds:
            if writer is not None:
                rec = pool[sent]
                writer.add(replace(rec, time=None))  # a live verdict is stamped when logged
            sent += 1
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))
        if writer is not None:
            writer.close()
        return 100.0 * (time.process_time() - cpu0) / (time.monotonic() - wall0), sent

    idle, _ = loop(None)
    with_log, sent = loop(ws.inspections.buffered_writer(max_rows=64, max_delay_s=1.0))
    return with_log, idle, sent


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=60.0, help="verdicts per second on the line")
    ap.add_argument("--live-seconds", type=float, default=30.0)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench-storage-"))
    rng = np.random.default_rng(0)
    table: list[tuple[str, str]] = []
    try:
        with Workspace.open(root / "ws", quick_check=False) as ws:
            table += bench_batches(ws, rng)
            fill_rate, now = fill(ws, rng, args.rows, args.rate)
            total = ws.inspections.count()
            table.append((f"fill {args.rows:,} rows in batches of 10,000 (rows/s)", f"{fill_rate:,.0f}"))
            first, median, counted = bench_query(ws, now)
            table.append(
                (
                    f"counts per class, last hour ({counted:,} of {total:,} rows): first call",
                    f"{first:.1f} ms",
                )
            )
            table.append(("counts per class, last hour: median of 20", f"{median:.1f} ms"))
            with_log, idle, sent = bench_live(ws, rng, args.live_seconds, args.rate)
            table.append(
                (
                    f"live logging {args.rate:.0f} verdicts/s for {args.live_seconds:.0f} s ({sent} rows): process CPU",
                    f"{with_log:.2f} % of one core",
                )
            )
            table.append(("same loop without logging (baseline)", f"{idle:.2f} % of one core"))
            table.append(("logging cost (difference)", f"{with_log - idle:.2f} % of one core"))
        t = time.perf_counter()
        with Workspace.open(root / "ws") as ws:
            table.append(
                (
                    f"open with quick_check + orphan scan at {ws.inspections.count():,} rows",
                    f"{(time.perf_counter() - t) * 1000:.0f} ms",
                )
            )
        size = sum(p.stat().st_size for p in (root / "ws").rglob("*") if p.is_file())
        table.append(("workspace size on disk", f"{size / 1e6:.0f} MB"))
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    print("| measure | value |\n|---|---|")
    for k, v in table:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
