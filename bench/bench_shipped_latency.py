"""What an inspector waits for with the shipped model: adapt to N-way 5-shot labelled parts, then 100 verdicts.

Reports the work done in the background when a part is labelled (the app embeds it then:
``core.training.adapt.warm_examples``), adaptation (Adapt pressed -> classifier ready), Adapt pressed -> first
verdict, the single-part verdict time (p50 / p99 over every verdict of the timed runs) and the process's peak
resident memory. ``--cold`` skips the embedding at labelling time (what Adapt costs without it).

    nice -n 10 .venv/bin/python bench/bench_shipped_latency.py [--checkpoint default] [--threads 1,2] [--repeats 3]

Parts are synthetic-line crops (core.camera.synthetic.render_part, 128 px BGR), prepared exactly as in the app
(the checkpoint's Preprocess), classified one part per forward pass as the LiveClassifier does.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import numpy as np
import torch

from core.camera.synthetic import DEFECT_CLASSES, render_part
from core.inference import LiveClassifier
from core.runtime import keep_freed_memory
from core.storage.checkpoint import load_checkpoint
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
    args = parser.parse_args()
    if args.allocator == "keep" and not keep_freed_memory():
        print("note: keep_freed_memory() did not apply here (not Linux/glibc)")
    rng = np.random.default_rng(0)
    support = [(render_part(rng, c, size=128)[0], c) for c in DEFECT_CLASSES for _ in range(args.shots)]
    queries = [
        render_part(rng, DEFECT_CLASSES[i % len(DEFECT_CLASSES)], size=128)[0] for i in range(args.queries)
    ]
    print(
        f"checkpoint {args.checkpoint}; allocator {args.allocator}; {len(DEFECT_CLASSES)}-way {args.shots}-shot, "
        f"{args.queries} verdicts; {'cold' if args.cold else 'parts embedded when labelled'}; "
        f"load {tuple(round(x, 2) for x in os.getloadavg())}"
    )
    print(
        "| threads | label -> embedded median ms | adapt median s | adapt -> first verdict median s "
        "| verdict p50 ms | verdict p99 ms | 100 verdicts median s | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        ck = load_checkpoint(args.checkpoint)
        adapt_s, first_s, infer_s, per_part, label_ms = [], [], [], [], [0.0]
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
            t1 = time.perf_counter()
            live = LiveClassifier(adapted.classifier, adapted.preprocess, adapted.class_names)
            times = []
            for i, part in enumerate(queries):  # one part at a time, as the line delivers them
                ts = time.perf_counter()
                live.classify([i], [part])
                times.append(time.perf_counter() - ts)
            t2 = time.perf_counter()
            if rep:  # the first run warms up
                adapt_s.append(t1 - t0)
                first_s.append(t1 - t0 + times[0])
                infer_s.append(t2 - t1)
                per_part += times
        p50, p99 = (float(np.percentile(per_part, q)) * 1000 for q in (50, 99))
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"| {threads} | {statistics.median(label_ms):.0f} | {statistics.median(adapt_s):.3f} | {statistics.median(first_s):.3f} | {p50:.1f} | "
            f"{p99:.1f} | {statistics.median(infer_s):.3f} | {peak_mb:.0f} |"
        )


if __name__ == "__main__":
    main()
