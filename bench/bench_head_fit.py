"""Leave-one-out head fitting after an adaptation (the new model's check): one head per example, one by one
with ``torch.optim.Adam`` (how it was done before 2026-12-02) against all heads in one batch
(``core.meta.finetune.fit_heads``), over the embedding's full width (the optional dimensions a task leaves out
zeroed: the app until 2026-12-02 21:00 UTC) and over the dimensions the task uses only (``mask=``: the app now).
The task's choice is the learner's own (``FineTuneHead.feature_mask``); the first two rows fit full width.

Embeddings: the shipped model's support views of synthetic line parts (``--ways`` classes x ``--shots``), as
the app's *Adapt* sees them. Reports wall and CPU time per check (median of ``--repeats``), how many
Python-level torch calls each made (what holds the interpreter lock in turns with the GUI thread) and the
largest difference between the two ways' leave-one-out probabilities.

    .venv/bin/python bench/bench_head_fit.py --threads 1
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.camera.synthetic import DEFECT_CLASSES, render_part
from core.meta.base import loo_indices
from core.meta.finetune import fit_heads
from core.storage.checkpoint import load_checkpoint


class CountCalls(TorchFunctionMode):
    """Counts torch function calls made from Python."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.calls += 1
        return func(*args, **(kwargs or {}))


def one_by_one(feats: torch.Tensor, labels: torch.Tensor, n: int, steps: int, patience: int) -> torch.Tensor:
    """The check as it was: per left-out example, a head fitted alone with torch.optim.Adam."""
    out = torch.full((len(labels), n), math.nan)
    for i in loo_indices(labels):
        keep = torch.arange(len(labels)) != i
        f, y = feats[:, keep], labels[keep]
        protos = torch.stack([f.mean(0)[y == k].mean(0) for k in range(n)])
        x = F.normalize(f.reshape(-1, f.shape[-1]), dim=1)
        yy = y.repeat(f.shape[0])
        weight, bias = torch.nn.Parameter(protos.clone()), torch.nn.Parameter(torch.zeros(n))
        log_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))
        opt = torch.optim.Adam([weight, bias, log_scale], lr=0.01)
        best, stale = math.inf, 0
        for _ in range(steps):
            loss = F.cross_entropy(log_scale.exp() * (x @ F.normalize(weight, dim=1).t()) + bias, yy)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            stale = 0 if value < best - 1e-4 else stale + 1
            best = min(best, value)
            if stale >= patience:
                break
        with torch.no_grad():
            w = F.normalize(weight, dim=1)
            logits = log_scale.exp() * F.normalize(feats[0, i : i + 1], dim=1) @ w.t() + bias
            out[i] = logits.softmax(1)[0]
    return out


def batched(
    feats: torch.Tensor,
    labels: torch.Tensor,
    n: int,
    steps: int,
    patience: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The check with every left-out head in one batch (on the ``mask``'s dimensions alone, if given)."""
    out = torch.full((len(labels), n), math.nan)
    judged = loo_indices(labels)
    keep = torch.ones(len(judged), len(labels), dtype=torch.bool)
    keep[torch.arange(len(judged)), torch.tensor(judged)] = False
    heads = fit_heads(feats, labels, n, keep, steps, patience=patience, mask=mask)
    for i, head in zip(judged, heads, strict=True):
        out[i] = head.logits(feats[0, i : i + 1]).softmax(1)[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ways", type=int, default=6)
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the app's default on 2 cores: 1)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ck = load_checkpoint("default")
    learner = ck.learner
    rng = np.random.default_rng(0)
    names = list(DEFECT_CLASSES[: args.ways])
    images = [render_part(rng, name, size=128)[0] for name in names for _ in range(args.shots)]
    labels = torch.arange(args.ways).repeat_interleave(args.shots)
    with torch.no_grad():
        feats = learner.embed_views(ck.preprocess.batch(images))  # type: ignore[operator]
    steps, patience = int(learner.inner_steps), int(learner.patience)  # type: ignore[arg-type]
    mask = learner.feature_mask(feats, labels)  # type: ignore[operator]
    used = feats.shape[-1] if mask is None else int(mask.sum())
    print(
        f"{args.ways}-way {args.shots}-shot, views {tuple(feats.shape)}, steps {steps}, patience {patience}; "
        f"the task uses {used} of {feats.shape[-1]} dimensions"
    )
    if mask is not None:
        feats = feats * mask  # what the first two ways fit (full width)
    print(f"torch threads {args.threads}, {torch.__version__}\n")
    print("| way | wall ms (median) | CPU ms (median) | Python-level torch calls |")
    print("|---|---|---|---|")
    results = {}
    for name, fn in (
        ("one head at a time, torch.optim.Adam", one_by_one),
        ("all heads in one batch, full width", batched),
        ("all heads in one batch, the dimensions the task uses", functools.partial(batched, mask=mask)),
    ):
        fn(feats, labels, args.ways, steps, patience)  # warm-up
        walls, cpus = [], []
        for _ in range(args.repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            results[name] = fn(feats, labels, args.ways, steps, patience)
            walls.append((time.perf_counter() - w0) * 1000)
            cpus.append((time.process_time() - c0) * 1000)
        with CountCalls() as counter:
            fn(feats, labels, args.ways, steps, patience)
        print(
            f"| {name} | {statistics.median(walls):.0f} | {statistics.median(cpus):.0f} | {counter.calls} |"
        )
    a, *others = results.values()
    print(
        "\nlargest difference from the first way's leave-one-out probabilities: "
        + ", ".join(f"{(a - b).abs().max():.2e}" for b in others)
    )
    print(
        f"same predicted class for every example: {all(bool((a.argmax(1) == b.argmax(1)).all()) for b in others)}"
    )


if __name__ == "__main__":
    main()
