"""Which meta-learner and backbone? Leave-one-data-set-out comparison at equal training time.

For the left-out set FOLD (one of the real defect sets in ../shared/datasets), every job ``ALGO@BACKBONE`` is
meta-trained for ``--budget`` seconds of CPU time on the OTHER real defect sets plus the synthetic line's product
variants (class-balanced, within-source episodes, surface augmentation: a core.training.recipe.TrainingRecipe), saved as a
checkpoint, then scored on FOLD's classes with the same episodes as the baselines (raw-pixel and texture-
histogram nearest class mean, the shipped model). 5-way (where FOLD has 5 classes) and all-classes-way, 1-shot
and 5-shot, mean and 95% CI over ``--episodes`` episodes.

    nice -n 10 .venv/bin/python bench/bench_algorithms.py --fold x_sdd.zip --budget 240 \
        --out-dir /tmp/algos --threads 1

Every job gets the same CPU-time budget on one thread (Adam 1e-3, meta-batch 2, 1- or 5-shot episodes from
one source at a time; 2..6-way for protonet / incontext, 5-way for the fixed-head MAML family, whose episodes
then skip kolektorsdd's two classes), so the comparison is "what does each algorithm reach for the same
compute", not "at convergence". MAML-family hyper-parameters: inner lr 0.1, 3 inner steps (also at test time).
The checkpoints are regular ones (``metainspect-lab evaluate --checkpoint OUT/FOLD-ALGO@BACKBONE.pt --data ...``
scores any of them on its own episodes); ``--skip-train`` re-scores the checkpoints already in ``--out-dir``.
Rows also go to ``OUT/FOLD.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_loo import draw_episodes, learner_scorer, ncm_scorer, texture_features_of  # noqa: E402
from recipes import folder_classes, train_for_budget  # noqa: E402

from core.lab.baselines import summarise  # noqa: E402
from core.runtime import keep_freed_memory  # noqa: E402
from core.storage.checkpoint import load_checkpoint  # noqa: E402
from core.training.recipe import TrainingRecipe  # noqa: E402
from core.training.recipe_run import load_pool  # noqa: E402

REAL_SETS = {"x_sdd.zip": None, "magnetic_tile.zip": "images", "kolektorsdd.zip": None}
VARIANTS = ("default", "brushed_plate", "brass_ring", "cast_hex", "anodized_tab")
DEFAULT_JOBS = (
    "maml@conv4,fomaml@conv4,anil@conv4,metasgd@conv4,protonet@conv4,incontext@conv4,"
    "protonet@resnet12,protonet@surface_fused"
)
GRADIENT_OPTIONS = {"inner_lr": 0.1, "inner_steps": 3}
BACKBONE_OPTIONS: dict[str, dict[str, Any]] = {
    "conv4": {"width": 32},
    "resnet12": {"width": 16},
    "surface_fused": {},
}


def job_recipe(fold: str, algo: str, backbone: str, seed: int) -> TrainingRecipe:
    """The recipe for one job: every real set but ``fold`` plus the synthetic variants, grey 64 px."""
    data = [{"path": p, **({"subdir": s} if s else {})} for p, s in REAL_SETS.items() if p != fold]
    gradient = algo in ("maml", "fomaml", "anil", "metasgd")
    options = GRADIENT_OPTIONS if gradient else {}
    return TrainingRecipe.from_dict({
        "backbone": {"name": backbone, **BACKBONE_OPTIONS.get(backbone, {})},
        "learner": {"name": algo, **options},
        "image_size": 64,
        "channels": 1,
        "data": data,
        "synthetic": {"variants": list(VARIANTS), "per_class": 40},
        "episodic": {
            "steps": 1_000_000,  # stopped by the time budget; the cosine schedule stays near its start
            "meta_batch": 2, "max_ways": 6,
            "ways": 5 if gradient else None,  # a fixed-size head: 5-way episodes (kolektorsdd's 2 classes drop out)
            "shots": [1, 5], "queries": 6, "lr": 1e-3, "report_every": 10,
        },
        "augment": "surface",
        "seed": seed,
    })  # fmt: skip


def summary_table(out_dir: Path) -> str:
    """One markdown table from every ``OUT/*.jsonl``: per fold and method the row with the most episodes."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(out_dir.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            cells = [v for v in row.values() if isinstance(v, dict)]
            row["_episodes"] = min(c["episodes"] for c in cells)
            key = (row["fold"], row["method"])
            if key not in best or row["_episodes"] > best[key]["_episodes"]:
                best[key] = row
    lines = [
        "| left out | method | training iterations | episodes | 5-way 1-shot | 5-way 5-shot | "
        "all-way 1-shot | all-way 5-shot |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (fold, method), row in best.items():
        settings = sorted(k for k, v in row.items() if isinstance(v, dict))
        by = {(int(k.split("w")[0]), int(k.split("w")[1].rstrip("s"))): row[k] for k in settings}
        ways = sorted({n for n, _ in by})
        cells = []
        for n in (5, max(ways)):  # a set with fewer than 5 classes has no 5-way cells
            for k in (1, 5):
                c = by.get((n, k))
                cells.append(f"{100 * c['mean']:.1f} ± {100 * c['ci95']:.1f}" if c else "-")
        fold_name = f"{fold.removesuffix('.zip')} ({max(ways)} classes)"
        its = row.get("iterations", "") or ""
        lines.append(f"| {fold_name} | {method} | {its} | {row['_episodes']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fold", choices=sorted(REAL_SETS), help="the left-out real set")
    ap.add_argument("--jobs", default=DEFAULT_JOBS, help="comma-separated ALGO@BACKBONE")
    ap.add_argument("--budget", type=float, default=240.0, help="training CPU seconds per job")
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--queries", type=int, default=15)
    ap.add_argument("--shots", default="1,5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--skip-train", action="store_true", help="score checkpoints already in --out-dir")
    ap.add_argument(
        "--table", action="store_true", help="print the table of every fold in --out-dir and stop"
    )
    args = ap.parse_args(argv)
    if args.table:
        print(summary_table(args.out_dir))
        return 0
    if args.fold is None:
        ap.error("--fold is required (or --table)")
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.fold.removesuffix(".zip")
    jobs = [j.strip().split("@") for j in args.jobs.split(",") if j.strip()]

    probe = job_recipe(args.fold, "protonet", "conv4", args.seed)
    pool = load_pool(probe)
    pre = probe.preprocess()
    test = folder_classes(probe.datasets_root() / args.fold, pre, REAL_SETS[args.fold])
    x = torch.cat([v.float() / 255.0 for v in test.values()])
    labels = np.concatenate([np.full(len(v), i) for i, v in enumerate(test.values())])
    print(
        f"fold {args.fold}: {len(test)} test classes / {len(x)} images; training pool {len(pool)} classes / "
        f"{pool.num_images} images; load {os.getloadavg()}",
        flush=True,
    )

    scorers: dict[str, Any] = {
        "raw-pixel NCM": ncm_scorer(x.flatten(1)),
        "texture NCM": ncm_scorer(texture_features_of(x, pre)),
    }
    shipped = load_checkpoint("default")
    sp = shipped.preprocess
    sx = torch.cat([v.float() / 255.0 for v in folder_classes(
        probe.datasets_root() / args.fold, sp, REAL_SETS[args.fold]).values()])  # fmt: skip
    sx = (sx - torch.tensor(sp.mean).view(1, -1, 1, 1)) / torch.tensor(sp.std).view(1, -1, 1, 1)
    scorers["shipped model (surface_fused, protonet)"] = learner_scorer(shipped.learner.eval(), sx)
    trained: dict[str, dict[str, Any]] = {}
    for algo, backbone in jobs:
        name = f"{algo}@{backbone}"
        ckpt = args.out_dir / f"{stem}-{name}.pt"
        if not args.skip_train:
            t0 = time.perf_counter()
            trained[name] = train_for_budget(
                job_recipe(args.fold, algo, backbone, args.seed),
                pool,
                args.budget,
                ckpt,
                bench="bench/bench_algorithms.py",
            )
            print(f"trained {name}: {trained[name]} ({time.perf_counter() - t0:.0f} s)", flush=True)
        loaded = load_checkpoint(ckpt)
        trained.setdefault(name, {"iterations": loaded.provenance.get("iterations")})
        scorers[name] = learner_scorer(loaded.learner.eval(), x)

    ways = sorted({min(5, len(test)), len(test)})
    print("| left out | method | iterations | " + " | ".join(
        f"{n}-way {k}-shot" for n in ways for k in args.shots.split(",")) + " |")  # fmt: skip
    print("|---|---|---|" + "---|" * (len(ways) * len(args.shots.split(","))))
    episodes = {
        (n, int(k)): draw_episodes(labels, n, int(k), args.queries, args.episodes, args.seed)
        for n in ways
        for k in args.shots.split(",")
    }
    with open(args.out_dir / f"{stem}.jsonl", "a") as log:
        for method, score in scorers.items():
            t0 = time.perf_counter()
            cells, row = [], {"fold": args.fold, "method": method, **trained.get(method, {})}
            for (n, k), eps in episodes.items():
                s = summarise(score(*e) for e in eps)
                cells.append(str(s))
                row[f"{n}w{k}s"] = {"mean": s.mean, "ci95": s.ci95, "episodes": len(eps)}
            iters = trained.get(method, {}).get("iterations", "")
            print(f"| {stem} | {method} | {iters} | " + " | ".join(cells) + " |", flush=True)
            row["score_seconds"] = round(time.perf_counter() - t0, 1)
            log.write(json.dumps(row) + "\n")
            log.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
