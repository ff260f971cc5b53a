"""Images per second of ``metainspect-lab run`` with the shipped model, decoding included (issue 12).

Adapts the shipped model (``default``) to 5 x_sdd images of 3 classes, then classifies N image files from disk
at 224 px (its input size) and 160 px, with 1 and 2 torch threads, and prints one markdown table:

- stage split, each alone on one batch stream: file read + decode (OpenCV), preprocess (resize, normalise),
  forward (batched 32, channels-last; the EfficientNet trunk's plain modules, then its fused oneDNN forward);
- end to end through :func:`core.lab.run.classify_items` (what ``run`` does: batches by input size,
  :func:`core.lab.scoring.run_batch`, decoding in a 2-thread pool two batches ahead of the forward pass), with
  either trunk, and one image per forward pass;
- ``--batch-sweep 1,2,4,...`` instead times ``run`` (fused trunk) at each batch size (how run_batch was chosen).

Images/s are the best of two runs (reference and fused alternate), with the CPU milliseconds per image of that
run (``time.process_time``, every thread of the process) beside them.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python bench/bench_run.py [--images 128] [--sizes 224,160]

Needs ../shared/datasets/x_sdd.zip (or --zip). The load average is printed: the machine may be shared.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from core.data import decode_image, open_image_tree
from core.inference.verdict import VerdictPolicy
from core.lab.run import Item, classify_items
from core.lab.scoring import Scorer
from core.models.efficientnet_lite import LiteTrunk
from core.storage.checkpoint import LoadedCheckpoint, load_checkpoint
from core.training.adapt import run_adaptation

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = ROOT.parent / "shared" / "datasets" / "x_sdd.zip"


def extract(zip_path: Path, out: Path, n: int) -> list[Path]:
    """``n`` images spread over the classes, written as files (the run reads files)."""
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(x for x in zf.namelist() if x.lower().endswith((".jpg", ".png", ".bmp")))
        picked = names[:: max(1, len(names) // n)][:n]
        paths = []
        for name in picked:
            target = out / "images" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))
            paths.append(target)
        support = out / "support"
        for cls in sorted({Path(x).parent.name for x in names})[:3]:
            for name in [x for x in names if Path(x).parent.name == cls][-5:]:
                target = support / cls / Path(name).name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(name))
    return paths


def adapted_model(support: Path) -> LoadedCheckpoint:
    ck = load_checkpoint("default")
    with open_image_tree(support) as tree:
        pairs = [
            (decode_image(m.read()), name)
            for name, files in zip(tree.class_names, tree.class_files, strict=True)
            for m in files
        ]
    adapted = run_adaptation(ck, pairs, steps=10)  # type: ignore[arg-type]
    path = support.parent / "adapted.pt"
    adapted.save(path)
    return load_checkpoint(path)


def rate(fn: Callable[[], int], repeats: int = 2) -> tuple[float, float]:
    """Best images/s of ``repeats`` runs of ``fn`` (which returns the images it handled), and its CPU ms per image."""
    best, cpu = 0.0, 0.0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        n = fn()
        r = n / (time.perf_counter() - t0)
        if r > best:
            best, cpu = r, (time.process_time() - c0) * 1000 / n
    return best, cpu


def _fuse(ck: LoadedCheckpoint, on: bool) -> None:
    for m in ck.learner.modules():
        if isinstance(m, LiteTrunk):
            m.fuse_inference = on


def measure(
    base: LoadedCheckpoint, ck: LoadedCheckpoint, files: list[Path], images: list[np.ndarray], x: torch.Tensor
) -> dict[str, tuple[float, float]]:
    """Images/s (and CPU ms per image) of each stage alone and of the run path end to end.

    ``reference`` runs the trunk's plain modules (channels-last, the path before ``core.models.lite_fused``),
    ``fused`` its oneDNN forward; the two alternate so both see the same load.
    """
    pre = ck.preprocess
    scorer = Scorer(ck, channels_last=True)
    scorer.probabilities(x[:4])  # warm-up (allocator, kernels, plans)
    items = lambda: iter(Item(str(p), lambda p=p: decode_image(p.read_bytes())) for p in files)  # noqa: E731
    policy = VerdictPolicy()

    def run(batch: int | None, pool: int) -> int:
        rows = classify_items(scorer, items(), policy, batch=batch, decode_threads=pool, prefetch=pool and 2)
        return sum(1 for _ in rows)

    out = {
        "decode": rate(lambda: sum(1 for p in files if decode_image(p.read_bytes()) is not None)),
        "prep": rate(lambda: len([pre.prepare(im) for im in images])),
    }
    for fused in (False, True, False, True):
        _fuse(base, fused)
        tag = "fused" if fused else "ref"
        for key, value in {
            f"fwd_{tag}": rate(lambda: sum(len(scorer.probabilities(c)) for c in x.split(32)), repeats=1),
            f"run_{tag}": rate(lambda: run(None, 2), repeats=1),
        }.items():
            out[key] = max(out.get(key, (0.0, 0.0)), value)
    out["per_image"] = rate(lambda: run(1, 0), repeats=1)
    return out


def sweep(base: LoadedCheckpoint, ck: LoadedCheckpoint, files: list[Path], batches: list[int]) -> list[str]:
    """``run`` end to end (fused trunk, decoding pool ahead) at each batch size: images/s (CPU ms per image)."""
    _fuse(base, True)
    scorer = Scorer(ck, channels_last=True)
    pre = ck.preprocess
    scorer.probabilities(torch.from_numpy(np.stack([pre.prepare(decode_image(files[0].read_bytes()))] * 2)))
    items = lambda: iter(Item(str(p), lambda p=p: decode_image(p.read_bytes())) for p in files)  # noqa: E731
    policy = VerdictPolicy()
    cells = []
    for b in batches:
        pool = 2 if b > 1 else 0
        r = rate(lambda b=b, pool=pool: sum(1 for _ in classify_items(
            scorer, items(), policy, batch=b, decode_threads=pool, prefetch=pool and 2)))  # fmt: skip
        cells.append(f"{r[0]:.1f} ({r[1]:.0f} ms)")
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--sizes", default="224,160")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument(
        "--batch-sweep", default="", help="only time `run` (fused) at these batch sizes, e.g. 1,2,4,8,16,32"
    )
    args = ap.parse_args()
    print(
        f"load average at start: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        files = extract(args.zip, Path(tmp), args.images)
        torch.set_num_threads(2)
        base = adapted_model(Path(tmp) / "support")
        data = [p.read_bytes() for p in files]
        sizes = [int(s) for s in args.sizes.split(",")]
        print(f"{len(files)} x_sdd files, {sum(map(len, data)) / len(data) / 1024:.1f} KiB each on average\n")
        if args.batch_sweep:
            batches = [int(b) for b in args.batch_sweep.split(",")]
            print("| px | threads | " + " | ".join(f"run, batch {b}" for b in batches) + " |")
            print("|---|---|" + "---|" * len(batches))
            for size in sizes:
                ck = dataclasses.replace(
                    base, preprocess=dataclasses.replace(base.preprocess, image_size=size)
                )
                for threads in [int(t) for t in args.threads.split(",")]:
                    torch.set_num_threads(threads)
                    cells = sweep(base, ck, files, batches)
                    print(f"| {size} | {threads} | " + " | ".join(cells) + " |", flush=True)
            return
        print(
            "| px | threads | decode | preprocess | forward, reference trunk | forward, fused trunk | "
            "run: 1 per forward (fused) | run: batched, reference trunk | run: batched, fused trunk |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for size in sizes:
            pre = dataclasses.replace(base.preprocess, image_size=size)
            ck = dataclasses.replace(base, preprocess=pre)
            images = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_UNCHANGED) for b in data]
            x = torch.from_numpy(np.stack([pre.prepare(im) for im in images]))
            for threads in [int(t) for t in args.threads.split(",")]:
                torch.set_num_threads(threads)
                r = measure(base, ck, files, images, x)
                cells = [
                    f"{r[k][0]:.0f}" if k in ("decode", "prep") else f"{r[k][0]:.1f} ({r[k][1]:.0f} ms)"
                    for k in ("decode", "prep", "fwd_ref", "fwd_fused", "per_image", "run_ref", "run_fused")
                ]
                print(f"| {size} | {threads} | " + " | ".join(cells) + " |", flush=True)
    print(
        f"\nload average at end: {os.getloadavg()[0]:.2f}; images/s, best of 2 (CPU ms per image of that run)"
    )


if __name__ == "__main__":
    main()
