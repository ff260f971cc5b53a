"""What-ifs for the anomaly scorer's settings: image AUROC per setting on real sets (the ADR 0010 addenda).

    nice -n 10 .venv/bin/python bench/anomaly_variants.py [--sets kolektorsdd,magnetic_tile] [--shots 50]
        [--draws 2] [--variants "top_k=10,bank_size=2048;top_k=10,bank_size=2048,stages=4+5"]

Each variant is a ``;``-separated list of ``AnomalyConfig`` overrides (``stages`` as ``3+4``); the protocol is
``bench/bench_anomaly.py``'s (core.lab.anomaly_eval, same seed, same capped test subsets), so a row here and
a row there agree when the settings do. The synthetic line's check for a variant: ``bench_anomaly.py --sets
synthetic --top-k K --bank-size B``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_anomaly import DATASETS, selected_sets

from core.inference.anomaly import AnomalyConfig
from core.lab.anomaly_eval import evaluate_anomaly
from core.models.efficientnet_lite import load_trunk

DEFAULT_VARIANTS = (
    "top_k=1,bank_size=4096;top_k=10,bank_size=2048;top_k=25,bank_size=2048;top_k=10,bank_size=1024;"
    "top_k=10,bank_size=4096;top_k=10,bank_size=2048,stages=2+3;top_k=10,bank_size=2048,stages=4+5;"
    "top_k=10,bank_size=2048,stages=3+4+5"
)


def parse_variant(text: str) -> dict[str, Any]:
    """``"top_k=10,stages=3+4"`` -> ``{"top_k": 10, "stages": (3, 4)}``."""
    out: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        out[key.strip()] = tuple(int(s) for s in value.split("+")) if key.strip() == "stages" else int(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="kolektorsdd,magnetic_tile")
    parser.add_argument("--shots", type=int, default=50)
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tested", type=int, default=150, help="OK and defective images per draw")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS)
    parser.add_argument("--datasets", default=str(DATASETS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    trunk, sha = load_trunk("lite0")
    wanted = set(args.sets.split(","))
    variants = [parse_variant(v) for v in args.variants.split(";") if v.strip()]
    print(
        f"K={args.shots}, {args.draws} draws, seed {args.seed}, at most {args.max_tested} + {args.max_tested} tested"
    )
    print("| data set | settings | image AUROC mean | min | s |")
    print("|---|---|---|---|---|")
    for label, data, ok_class, defects in selected_sets(Path(args.datasets), wanted):
        for overrides in variants:
            t0 = time.perf_counter()
            res = evaluate_anomaly(
                trunk, data, ok_class, shots=args.shots, draws=args.draws, seed=args.seed,
                config=AnomalyConfig(**overrides), weights_sha256=sha, defect_classes=defects,
                max_ok_tested=args.max_tested, max_defects_tested=args.max_tested,
            )  # fmt: skip
            shown = ", ".join(
                f"{k} {'+'.join(map(str, v)) if k == 'stages' else v}" for k, v in overrides.items()
            )
            print(
                f"| {label} | {shown} | {res.auroc:.3f} | {res.auroc_min:.3f} | {time.perf_counter() - t0:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
