"""The anomaly scorer (taught from OK parts only) on real data sets and the synthetic line, plus its speed.

    nice -n 10 .venv/bin/python bench/bench_anomaly.py [--sets kolektorsdd,magnetic_tile,elpv,synthetic]
        [--shots 10,50] [--draws 2] [--max-ok-tested 150] [--max-defects-tested 150] [--threads 1,2]

Image AUROC: per draw, the scorer (core.inference.anomaly, the app's defaults) is taught from K random images of
the OK class and scores the rest of the OK images and the defective ones (core.lab.anomaly_eval, the protocol
of ``metainspect-lab evaluate-anomaly``; ``--max-*-tested`` caps the images scored per draw, a random subset,
so the run fits a slow machine). kolektorsdd: ok vs defective, native resolution; magnetic_tile: MT_Free vs
the five defect classes (images/ only); elpv: per cell type, *_defectprob000 vs *_defectprob100.

Synthetic line: taught from 20 OK parts (128 px crops, core.camera.synthetic), tested on fresh OK parts, the
five line defects and a burn mark the line never makes; detection at <= 5% false rejects (best threshold on
the test scores) and at the scorer's own leave-one-out threshold; the same threshold taught from 5, 10 and 20
OK parts (``--calibration-shots``), with the false rejects it gives on fresh OK parts. Latency: one part scored (features + nearest
neighbours) as the live classifier does, p50/p99, on 1 and 2 threads; bank memory of the taught scorers.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from core.camera.synthetic import DEFECT_CLASSES, UNSEEN_DEFECT, render_part, render_unseen_part
from core.data.folder import RawImageFolders, read_image_folders
from core.inference.anomaly import AnomalyConfig, AnomalyScorer, empirical_threshold
from core.lab.anomaly_eval import evaluate_anomaly
from core.lab.anomaly_metrics import auroc, detection_at_false_reject
from core.models.efficientnet_lite import load_trunk

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def real_sets(root: Path) -> list[tuple[str, str, str | None, str, list[str] | None]]:
    """(label, zip, subdir, ok class, defect classes or None for every other class)."""
    return [
        ("kolektorsdd", str(root / "kolektorsdd.zip"), None, "ok", None),
        ("magnetic_tile", str(root / "magnetic_tile.zip"), "images", "MT_Free", None),
        ("elpv mono", str(root / "elpv.zip"), None, "mono_defectprob000", ["mono_defectprob100"]),
        ("elpv poly", str(root / "elpv.zip"), None, "poly_defectprob000", ["poly_defectprob100"]),
    ]


def selected_sets(
    root: Path, wanted: set[str]
) -> Iterator[tuple[str, RawImageFolders, str, list[str] | None]]:
    """(label, images, OK class, defect classes) of the real sets named in ``wanted`` (by first word)."""
    for label, path, subdir, ok_class, defects in real_sets(root):
        if label.split()[0] in wanted:
            yield label, read_image_folders(path, subdir=subdir), ok_class, defects


def synthetic(trunk: torch.nn.Module, sha: str, config: AnomalyConfig, n_ok: int, n_defect: int) -> dict:
    rng = np.random.default_rng(2026)
    teach = [render_part(rng, "ok", size=128)[0] for _ in range(20)]
    ok = [render_part(rng, "ok", size=128)[0] for _ in range(n_ok)]
    bad = {c: [render_part(rng, c, size=128)[0] for _ in range(n_defect)] for c in DEFECT_CLASSES[1:]}
    bad[UNSEEN_DEFECT] = [render_unseen_part(rng, size=128)[0] for _ in range(n_defect)]
    scorer = AnomalyScorer.fit(teach, trunk, config, weights_sha256=sha)
    ok_s = scorer.scores(ok)
    bad_s = {c: scorer.scores(v) for c, v in bad.items()}
    every = np.concatenate(list(bad_s.values()))
    point = detection_at_false_reject(ok_s, every, 0.05)
    return {
        "scorer": scorer,
        "parts": ok + [im for v in bad.values() for im in v],
        "auroc": auroc(ok_s, every),
        "det_at_5": 1.0 - point.escape_rate,
        "fr_at_5": point.false_reject_rate,
        "unseen_at_5": float((bad_s[UNSEEN_DEFECT] > point.threshold).mean()),
        "cal_fr": float((ok_s > scorer.threshold).mean()),
        "cal_det": float((every > scorer.threshold).mean()),
        "cal_unseen": float((bad_s[UNSEEN_DEFECT] > scorer.threshold).mean()),
        "per_class_cal": {c: float((v > scorer.threshold).mean()) for c, v in bad_s.items()},
    }


def calibration(trunk: torch.nn.Module, config: AnomalyConfig, shots: list[int], draws: int) -> list[str]:
    """Rows: taught from K OK parts, false rejects and detection at the scorer's own threshold (synthetic), and
    the same at the leave-one-out quantile alone (the threshold before the prediction bound)."""
    rng = np.random.default_rng(7)
    ok = [render_part(rng, "ok", size=128)[0] for _ in range(300)]
    bad = [render_part(rng, c, size=128)[0] for c in DEFECT_CLASSES[1:] for _ in range(20)]
    bad += [render_unseen_part(rng, size=128)[0] for _ in range(20)]
    rows = []
    for k in shots:
        fr, det, fr_q, det_q = [], [], [], []
        for _ in range(draws):
            scorer = AnomalyScorer.fit([render_part(rng, "ok", size=128)[0] for _ in range(k)], trunk, config)
            ok_s, bad_s = scorer.scores(ok), scorer.scores(bad)
            quantile = empirical_threshold(scorer.loo_scores, config.false_reject_rate)
            fr.append(float((ok_s > scorer.threshold).mean()))
            det.append(float((bad_s > scorer.threshold).mean()))
            fr_q.append(float((ok_s > quantile).mean()))
            det_q.append(float((bad_s > quantile).mean()))
        rows.append(
            f"| {k} | {np.mean(fr):.1%} (max {np.max(fr):.1%}) | {np.mean(det):.1%} (min {np.min(det):.1%}) | "
            f"{np.mean(fr_q):.1%} / {np.mean(det_q):.1%} |"
        )
    return rows


def latency(scorer: AnomalyScorer, parts: list[np.ndarray], threads: int) -> tuple[float, float]:
    torch.set_num_threads(threads)
    for im in parts[:10]:
        scorer.score(im)
    times = []
    for im in parts:
        t0 = time.perf_counter()
        scorer.score(im)
        times.append(1000 * (time.perf_counter() - t0))
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="kolektorsdd,magnetic_tile,elpv,synthetic")
    parser.add_argument("--shots", default="10,50")
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-ok-tested", type=int, default=150)
    parser.add_argument("--max-defects-tested", type=int, default=150)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--calibration-shots", default="5,10,20", help="synthetic: OK parts taught, per row")
    parser.add_argument("--calibration-draws", type=int, default=4)
    parser.add_argument("--datasets", default=str(DATASETS))
    parser.add_argument(
        "--bank-size", type=int, default=None, help="override the default bank cap (a what-if)"
    )
    parser.add_argument(
        "--top-k", type=int, default=None, help="override the default score's top-k mean (a what-if)"
    )
    parser.add_argument(
        "--stages", default=None, help="override the trunk stages tapped, e.g. 4+5 (a what-if)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    stages = tuple(int(x) for x in args.stages.split("+")) if args.stages else None
    overrides = {"bank_size": args.bank_size, "top_k": args.top_k, "stages": stages}
    config = AnomalyConfig(**{k: v for k, v in overrides.items() if v is not None})
    trunk, sha = load_trunk(config.variant)
    wanted = set(args.sets.split(","))
    shots = [int(s) for s in args.shots.split(",")]
    print(f"anomaly scorer defaults: {config.to_dict()}")
    print(f"load {tuple(round(x, 2) for x in os.getloadavg())}; {args.draws} draws; seed {args.seed}")
    print("| data set | K | image AUROC mean | min | OK / defective scored per draw | s per draw | bank MB |")
    print("|---|---|---|---|---|---|---|")
    for label, data, ok_class, defects in selected_sets(Path(args.datasets), wanted):
        for k in shots:
            t0 = time.perf_counter()
            res = evaluate_anomaly(
                trunk, data, ok_class, shots=k, draws=args.draws, seed=args.seed, config=config,
                weights_sha256=sha, defect_classes=defects, max_ok_tested=args.max_ok_tested,
                max_defects_tested=args.max_defects_tested,
            )  # fmt: skip
            bank = max(d.bank_bytes for d in res.per_draw)
            per_draw = (time.perf_counter() - t0) / res.draws
            print(
                f"| {label} | {k} | {res.auroc:.3f} | {res.auroc_min:.3f} | {res.ok_tested} / "
                f"{res.defects_tested} | {per_draw:.0f} | {bank / 2**20:.1f} |",
                flush=True,
            )
    if "synthetic" in wanted:
        syn = synthetic(trunk, sha, config, n_ok=200, n_defect=40)
        print()
        print("| synthetic line, taught from 20 OK parts | value |")
        print("|---|---|")
        print(f"| image AUROC (200 OK, 40 of each of 5 line defects + 40 burnt) | {syn['auroc']:.3f} |")
        print(f"| detected at <= 5% false rejects (FR {syn['fr_at_5']:.1%}) | {syn['det_at_5']:.1%} |")
        print(f"| unseen defect ({UNSEEN_DEFECT}) detected there | {syn['unseen_at_5']:.1%} |")
        print(
            f"| at the leave-one-out threshold: false rejects / detected / {UNSEEN_DEFECT} | "
            f"{syn['cal_fr']:.1%} / {syn['cal_det']:.1%} / {syn['cal_unseen']:.1%} |"
        )
        per = ", ".join(f"{c} {v:.0%}" for c, v in syn["per_class_cal"].items())
        print(f"| per defect at that threshold | {per} |")
        print(f"| bank | {tuple(syn['scorer'].bank.shape)}, {syn['scorer'].bank_bytes / 2**20:.2f} MB |")
        print()
        print(
            f"| OK parts taught (synthetic, {args.calibration_draws} draws; 300 fresh OK, 120 defective) | "
            f"false rejects at the scorer's threshold ({config.false_reject_rate:.0%} asked) | detected | "
            "LOO quantile alone: false rejects / detected |"
        )
        print("|---|---|---|---|")
        shots_cal = [int(x) for x in args.calibration_shots.split(",")]
        for row in calibration(trunk, config, shots_cal, args.calibration_draws):
            print(row, flush=True)
        print()
        print("| threads | scoring p50 ms | scoring p99 ms (128 px part, default settings) |")
        print("|---|---|---|")
        for t in [int(x) for x in args.threads.split(",")]:
            p50, p99 = latency(syn["scorer"], syn["parts"][:200], t)
            print(f"| {t} | {p50:.1f} | {p99:.1f} |", flush=True)


if __name__ == "__main__":
    main()
