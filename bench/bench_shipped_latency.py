"""What an inspector waits for with the shipped model: adapt to N-way 5-shot labelled parts, then 100 verdicts.

Reports the work done in the background when a part is labelled (the app embeds it then:
``core.training.adapt.warm_examples``), adaptation (Adapt pressed -> classifier ready), Adapt pressed -> first
verdict, the single-part verdict time (p50 / p99 over every verdict of the timed runs) and the process's peak
resident memory. The verdict includes the anomaly scorer taught from the OK support parts, as in the app
(``--anomaly off`` leaves it out; ``serial`` / ``parallel`` force where it runs). ``--cold`` skips the embedding at labelling time (what Adapt costs without it).

    nice -n 10 .venv/bin/python bench/bench_shipped_latency.py [--checkpoint default] [--threads 1,2] [--repeats 3]

``--breakdown ROUNDS`` instead says where one verdict's time goes (preprocessing, each part of the fused model,
the rest), for the fused trunk (``core.models.lite_fused``) and the reference forward alternately in the same
process, so both see the same load: median wall and CPU (``time.process_time``) milliseconds per stage.

Parts are synthetic-line crops (core.camera.synthetic.render_part, 128 px BGR), prepared exactly as in the app
(the checkpoint's Preprocess), classified one part per forward pass as the LiveClassifier does. ``--data DIR``
takes them from an image-folder tree or .zip instead (the first ``--ways`` classes), each delivered as the
station's part trigger delivers a part: a square crop around it resized to ``--crop-size`` (the station's
default, 128 px; 0 keeps every image's own size, as the lab reads folders: each new size costs the trunk new
kernels). A real surface, on which the learner may choose the covariance dimensions the synthetic line leaves
out. The anomaly scorer is then taught only when an OK class (ok, good, mt_free) is among them.

    nice -n 10 .venv/bin/python bench/bench_shipped_latency.py --threads 1 --data ../shared/datasets/x_sdd.zip
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from core.camera.synthetic import DEFECT_CLASSES, render_part
from core.data.folder import read_image_folders
from core.imaging.roi import resize_to, square_crop
from core.inference import LiveClassifier
from core.inference.anomaly import AnomalyScorer, find_trunk
from core.lab.metrics import OK_CLASS_NAMES
from core.models.efficientnet_lite import LiteTrunk
from core.runtime import keep_freed_memory
from core.station.settings import StationSettings
from core.storage.checkpoint import LoadedCheckpoint, load_checkpoint
from core.training.adapt import run_adaptation, warm_examples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--allocator",
        choices=("keep", "default"),
        default="keep",
        help="keep: core.runtime.keep_freed_memory() as the app does; default: glibc's own settings",
    )
    parser.add_argument("--cold", action="store_true", help="do not embed parts when they are labelled")
    parser.add_argument(
        "--anomaly", choices=("off", "serial", "parallel", "app"), default="app",
        help="with the anomaly scorer taught from the OK support parts, as the app does: scored after the "
        "classifier (serial), beside it on a second thread (parallel), or as LiveClassifier decides (app)",
    )  # fmt: skip
    parser.add_argument(
        "--breakdown", type=int, default=0, metavar="ROUNDS",
        help="time each stage of a verdict, fused trunk vs reference forward, ROUNDS x --queries parts",
    )  # fmt: skip
    parser.add_argument(
        "--data", default=None, help="image-folder tree or .zip: its parts instead of synthetic"
    )
    parser.add_argument("--ways", type=int, default=len(DEFECT_CLASSES), help="classes taken from --data")
    parser.add_argument(
        "--crop-size", type=int, default=StationSettings().crop_size,
        help="--data images as square crops of this side (the station's trigger); 0: their own size",
    )  # fmt: skip
    args = parser.parse_args()
    if args.allocator == "keep" and not keep_freed_memory():
        print("note: keep_freed_memory() did not apply here (not Linux/glibc)")
    support, queries, ok_names = parts(args)
    if args.breakdown:
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            breakdown(load_checkpoint(args.checkpoint), support, queries, args.breakdown)
        return
    crops = "" if args.data is None else f" (crop size {args.crop_size or 'native'})"
    print(
        f"checkpoint {args.checkpoint}; parts {args.data or 'synthetic'}{crops}; allocator {args.allocator}; "
        f"{len({c for _, c in support})}-way {args.shots}-shot, "
        f"{args.queries} verdicts; {'cold' if args.cold else 'parts embedded when labelled'}; "
        f"anomaly scorer {args.anomaly}; "
        f"load {tuple(round(x, 2) for x in os.getloadavg())}"
    )
    print(
        "| threads | label -> embedded median ms | adapt median s | adapt -> first verdict median s "
        "| verdict p50 ms | verdict p99 ms | verdict CPU p50 ms | 100 verdicts median s | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        ck = load_checkpoint(args.checkpoint)
        adapt_s, first_s, infer_s, per_part, label_ms, cpu_part = [], [], [], [], [0.0], []
        if not args.cold:
            label_ms = []
            for image, _ in support:  # labelled one at a time: each is embedded in the background then
                ts = time.perf_counter()
                warm_examples(ck, [image])
                label_ms.append((time.perf_counter() - ts) * 1000)
        for rep in range(args.repeats + 1):
            if args.cold:
                ck.learner.cache.clear()
            t0 = time.perf_counter()
            adapted = run_adaptation(ck, support)
            scorer = None
            ok_parts = [im for im, c in support if c in ok_names]
            if args.anomaly != "off" and len(ok_parts) >= 2:  # as teach(): the OK examples' scorer beside it
                scorer = AnomalyScorer.fit(ok_parts, find_trunk(ck.learner.model))
            t1 = time.perf_counter()
            parallel = {"serial": False, "parallel": True}.get(args.anomaly)
            live = LiveClassifier(
                adapted.classifier, adapted.preprocess, adapted.class_names, anomaly=scorer, parallel=parallel
            )
            times, cpu = [], []
            for i, part in enumerate(queries):  # one part at a time, as the line delivers them
                ts, cs = time.perf_counter(), time.process_time()
                live.classify([i], [part])
                times.append(time.perf_counter() - ts)
                cpu.append(time.process_time() - cs)
            t2 = time.perf_counter()
            if rep:  # the first run warms up
                adapt_s.append(t1 - t0)
                first_s.append(t1 - t0 + times[0])
                infer_s.append(t2 - t1)
                per_part += times
                cpu_part += cpu
        p50, p99 = (float(np.percentile(per_part, q)) * 1000 for q in (50, 99))
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"| {threads} | {statistics.median(label_ms):.0f} | {statistics.median(adapt_s):.3f} | {statistics.median(first_s):.3f} | {p50:.1f} | "
            f"{p99:.1f} | {statistics.median(cpu_part) * 1000:.1f} | {statistics.median(infer_s):.3f} | {peak_mb:.0f} |"
        )


def parts(args: argparse.Namespace) -> tuple[list[tuple[np.ndarray, str]], list[np.ndarray], set[str]]:
    """Labelled support parts ``(image, class)``, query parts and the OK class names: synthetic, or from
    ``--data`` (first ``--ways`` classes; each class's first ``--shots`` images label, the rest are judged in
    turn)."""
    if args.data is None:
        rng = np.random.default_rng(0)
        support = [(render_part(rng, c, size=128)[0], c) for c in DEFECT_CLASSES for _ in range(args.shots)]
        queries = [
            render_part(rng, DEFECT_CLASSES[i % len(DEFECT_CLASSES)], size=128)[0]
            for i in range(args.queries)
        ]
        return support, queries, {"ok"}
    data = read_image_folders(args.data)

    def delivered(im: np.ndarray) -> np.ndarray:
        if not args.crop_size:
            return im
        h, w = im.shape[:2]
        return resize_to(square_crop(im, w / 2, h / 2, max(h, w)), args.crop_size)

    names = data.class_names[: args.ways]
    short = [n for n, images in zip(names, data.images, strict=False) if len(images) <= args.shots]
    if len(names) < 2 or short:
        raise SystemExit(f"{args.data}: need 2+ classes with over {args.shots} images each (short: {short})")
    support = [
        (delivered(im), n)
        for n, images in zip(names, data.images, strict=False)
        for im in images[: args.shots]
    ]
    rest = [images[args.shots :] for images in data.images[: len(names)]]
    queries = []
    for i in range(args.queries):  # the classes in turn, each's remaining images in order (cycling)
        images = rest[i % len(rest)]
        queries.append(delivered(images[(i // len(rest)) % len(images)]))
    return support, queries, {n for n in names if n.rsplit("/", 1)[-1].lower() in OK_CLASS_NAMES}


Times = dict[str, list[tuple[float, float]]]


def _timed(fn: Callable[[], Any], into: Times, name: str) -> Any:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    into.setdefault(name, []).append((time.perf_counter() - w, time.process_time() - c))
    return out


def _one_verdict(live: LiveClassifier, fused: nn.Module, part: np.ndarray, t: Times) -> tuple[float, ...]:
    """Each stage of one part's verdict timed alone, then the whole verdict; returns its probabilities."""
    with torch.inference_mode():
        x = _timed(lambda: live.preprocess.batch([part]), t, "preprocess (colour, resize to 224, normalise)")
        lite_in, surface_in = fused.inputs
        lite, surface = (p.features for p in fused.parts)
        xl = _timed(lambda: lite_in(x), t, "EfficientNet-Lite0 input (unnormalise, normalise)")
        _timed(lambda: lite(xl), t, "EfficientNet-Lite0 trunk + pooled stages")
        xs = _timed(lambda: surface_in(x), t, "surface input (64 px copy, grey)")
        _timed(lambda: surface.cnn(xs), t, "surface CNN")
        _timed(lambda: surface.histograms(xs), t, "surface texture histograms")
    verdict = _timed(lambda: live.classify([0], [part])[0], t, "whole verdict (LiveClassifier.classify)")
    return verdict.probabilities


def breakdown(
    ck: LoadedCheckpoint, support: list[tuple[np.ndarray, str]], queries: list[np.ndarray], rounds: int
) -> None:
    """Per-stage median wall and CPU ms of single-part verdicts, fused trunk and reference forward interleaved."""
    adapted = run_adaptation(ck, support)
    live = LiveClassifier(adapted.classifier, adapted.preprocess, adapted.class_names)
    trunks = [m for m in ck.learner.modules() if isinstance(m, LiteTrunk)]
    variants = ("reference", "fused")
    times: dict[str, Times] = {v: {} for v in variants}
    gap = 0.0
    for rnd in range(rounds + 1):  # round 0 warms up (plans, allocator)
        for i, part in enumerate(queries):
            probs = {}
            for name in variants if i % 2 else variants[::-1]:  # alternate which goes first
                for trunk in trunks:
                    trunk.fuse_inference = name == "fused"
                probs[name] = _one_verdict(live, ck.learner.model.features, part, times[name] if rnd else {})
            gap = max(gap, *(abs(a - b) for a, b in zip(*probs.values(), strict=True)))
    for trunk in trunks:
        trunk.fuse_inference = True
    load = tuple(round(v, 2) for v in os.getloadavg())
    print(
        f"\n{torch.get_num_threads()} thread(s); {rounds} x {len(queries)} parts; load {load}; "
        f"largest probability difference fused vs reference {gap:.1e}"
    )
    print("| stage | reference wall ms | reference CPU ms | fused wall ms | fused CPU ms |")
    print("|---|---|---|---|---|")
    for stage in times["reference"]:
        cells = []
        for name in variants:
            wall, cpu = zip(*times[name][stage], strict=True)
            cells += [f"{statistics.median(wall) * 1000:.2f}", f"{statistics.median(cpu) * 1000:.2f}"]
        print(f"| {stage} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
