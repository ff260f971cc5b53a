"""Crash-test subject: writes labels and inspections in a loop, printing each confirmed id (flushed).

Run as ``python -m tests.core.storage.crash_writer <workspace> <seed>``; the test kills it with SIGKILL.
A line ``label <id>`` is printed only after ``ExampleStore.add`` returned, i.e. after the commit.
"""

from __future__ import annotations

import sys

import numpy as np

from core.storage import NewInspection, Workspace


def main(root: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ws = Workspace.open(root, user=f"crash-{seed}")
    classes = [ws.classes.ensure(name).name for name in ("ok", "scratch", "dent")]
    print("ready", flush=True)
    part = seed * 1_000_000
    while True:
        image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        ex = ws.examples.add(image, classes[int(rng.integers(len(classes)))], source=f"crash:{seed}")
        print(f"label {ex.id}", flush=True)
        if rng.random() < 0.3:
            ws.examples.relabel(ex.id, classes[int(rng.integers(len(classes)))])
        batch = [NewInspection("ok", "OK", (0.7, 0.2, 0.1), part_id=part + i) for i in range(8)]
        ids = ws.inspections.append_many(batch)
        part += len(batch)
        print(f"inspection {ids[-1]}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
