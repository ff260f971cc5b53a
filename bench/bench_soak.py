"""Whole-shift soak benchmark (issue 11): the headless station on the synthetic line at 30 fps for an hour,
adapting every few minutes, with resident memory, threads, open files, frame drops and verdict latency sampled.

Usage::

    python bench/bench_soak.py [--minutes 60] [--adapt-every 300] [--sample-every 30] [--warmup 300]
                               [--jsonl docs/bench-results/soak-DATE.jsonl]

A thin wrapper over ``core.lab.soak`` (the code the slow test runs): one JSON line per sample, then one
``{"summary": ...}`` line, printed and appended to the JSONL file as they come. Targets: resident memory
flat within 50 MB after warm-up, no growth in threads or file handles.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.lab.soak import main


def _default_jsonl() -> Path:
    out = Path(__file__).resolve().parents[1] / "docs" / "bench-results"
    return out / f"soak-{time.strftime('%Y-%m-%d', time.gmtime())}.jsonl"


if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--jsonl" not in argv:
        argv += ["--jsonl", str(_default_jsonl())]
    sys.exit(main(argv))
