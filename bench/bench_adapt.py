"""Adaptation latency, the number an inspector feels: adapt to a 5-way 5-shot 84x84 RGB task, then verdicts
for 100 query images, on Conv-4, with 2 CPU threads.

Data: the X-SDD steel-defect zip (../shared/datasets/x_sdd.zip), real RGB images resized to 84x84. The model
is a freshly initialised Conv-4 (latency does not depend on the weights). Each variant is timed several times
after a warm-up; the median is reported.

    nice -n 10 .venv/bin/python bench/bench_adapt.py                 # the table
    nice -n 10 .venv/bin/python bench/bench_adapt.py --profile maml  # where the time goes
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.meta import create_learner  # noqa: E402
from core.models import create_model  # noqa: E402
from core.runtime import keep_freed_memory  # noqa: E402

DEFAULT_ZIP = REPO.parent / "shared" / "datasets" / "x_sdd.zip"


def load_task(zip_path: Path, ways: int, shots: int, queries: int, size: int) -> tuple[torch.Tensor, ...]:
    """Support ``(ways*shots, 3, size, size)``, labels, and ``queries`` query images from the first classes."""
    per_class: dict[str, list[str]] = {}
    with zipfile.ZipFile(zip_path) as zf:
        for name in sorted(zf.namelist()):
            if name.lower().endswith((".jpg", ".png")):
                per_class.setdefault(name.rsplit("/", 1)[0], []).append(name)
        classes = sorted(per_class)[:ways]
        q_per_class = -(-queries // ways)

        def read(name: str) -> np.ndarray:
            img = cv2.imdecode(np.frombuffer(zf.read(name), np.uint8), cv2.IMREAD_COLOR)
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
            return img[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0

        sx, sy, qx = [], [], []
        for label, cls in enumerate(classes):
            files = per_class[cls]
            sx += [read(f) for f in files[:shots]]
            sy += [label] * shots
            qx += [read(f) for f in files[shots : shots + q_per_class]]
    return (
        torch.from_numpy(np.stack(sx)),
        torch.tensor(sy),
        torch.from_numpy(np.stack(qx[:queries])),
    )


def time_it(fn: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU seconds of ``repeats`` calls after one warm-up call."""
    fn()  # warm-up: allocator, oneDNN primitive cache
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def row(label: str, threads: int, cl: bool, timing: tuple[list[float], list[float]]) -> str:
    wall, cpu = timing
    runs = " ".join(f"{r:.2f}" for r in wall)
    return (
        f"| {label} | {threads} | {int(cl)} | {statistics.median(wall):.3f} | {runs} | "
        f"{statistics.median(cpu):.3f} |"
    )


def variant(
    learner_name: str, sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor, steps: int, channels_last: bool
) -> Callable[[], object]:
    torch.manual_seed(0)
    model = create_model("conv4", in_channels=3, n_way=5, image_size=sx.shape[-1], width=64)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        sx = sx.contiguous(memory_format=torch.channels_last)
        qx = qx.contiguous(memory_format=torch.channels_last)
    learner = create_learner(learner_name, model, n_way=5, inner_lr=0.01, inner_steps=steps)

    def run() -> torch.Tensor:
        return learner.adapt(sx, sy, steps=steps).predict_proba(qx)

    return run


def plain_sgd(sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor, steps: int) -> Callable[[], object]:
    """Reference point: deep-copy the model, torch.optim.SGD for ``steps``, then predict (what a blog does)."""
    import copy

    torch.manual_seed(0)
    model = create_model("conv4", in_channels=3, n_way=5, image_size=sx.shape[-1], width=64)

    def run() -> torch.Tensor:
        m = copy.deepcopy(model)
        opt = torch.optim.SGD(m.parameters(), lr=0.01)
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(sx), sy).backward()
            opt.step()
        with torch.no_grad():
            return m(qx).softmax(1)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--zip", default=str(DEFAULT_ZIP))
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--size", type=int, default=84)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", default="2", help="comma-separated thread counts to try")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--learners", default="maml,anil,protonet")
    parser.add_argument("--channels-last", default="0,1", help="0, 1 or 0,1")
    parser.add_argument("--plain", action="store_true", help="also time deep-copy + torch.optim.SGD")
    parser.add_argument("--profile", default=None, help="profile one learner instead of the table")
    parser.add_argument(
        "--allocator",
        choices=("keep", "default"),
        default="keep",
        help="keep: core.runtime.keep_freed_memory() as the app does; default: glibc's own settings",
    )
    args = parser.parse_args()
    if args.allocator == "keep" and not keep_freed_memory():
        print("note: keep_freed_memory() did not apply here (not Linux/glibc)")

    sx, sy, qx = load_task(Path(args.zip), args.ways, args.shots, args.queries, args.size)
    if args.profile:
        from torch.profiler import profile

        torch.set_num_threads(int(args.threads.split(",")[0]))
        run = variant(args.profile, sx, sy, qx, args.steps, channels_last=False)
        run()
        with profile() as prof:
            run()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))
        return

    print(
        f"Conv-4 width 64, {args.ways}-way {args.shots}-shot {args.size}x{args.size} RGB (X-SDD), "
        f"{args.steps} inner steps, {len(qx)} queries; {args.repeats} timed runs after a warm-up; "
        f"allocator {args.allocator}; load {os.getloadavg()}"
    )
    print("| learner | threads | channels_last | median wall s | wall runs (s) | median process CPU s |")
    print("|---|---|---|---|---|---|")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        if args.plain:
            print(
                row(
                    "plain SGD (deepcopy)",
                    threads,
                    False,
                    time_it(plain_sgd(sx, sy, qx, args.steps), args.repeats),
                )
            )
        for name in [n.strip() for n in args.learners.split(",") if n.strip()]:
            for cl in [bool(int(c)) for c in args.channels_last.split(",")]:
                print(
                    row(name, threads, cl, time_it(variant(name, sx, sy, qx, args.steps, cl), args.repeats))
                )
                sys.stdout.flush()


if __name__ == "__main__":
    main()
