"""``metainspect-lab adapt | run | report``: parsers and handlers (thin faces over core.lab).

:func:`add_lab_commands` is the one hook :mod:`core.cli` calls. Handlers import torch and the lab modules on
use, so ``metainspect-lab --help`` stays instant. Progress bars go to stderr, results to files and stdout;
user errors raise ``ValueError``/``OSError``/``CheckpointError`` and :func:`core.cli.main` turns them into one
line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.storage.checkpoint import LoadedCheckpoint

MODEL_HELP = "model file, 'default' (the shipped model), or with --workspace: 'active' or a version number"


def _model(p: argparse.ArgumentParser, flag_help: str = MODEL_HELP) -> None:
    p.add_argument("--model", "--checkpoint", dest="model", required=True, help=flag_help)
    p.add_argument("--workspace", default=None, help="workspace folder (for 'active' or a version number)")


def _device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: METAINSPECT_THREADS or all)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _policy(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ok-class", default=None, help="the class of good parts (default: ok, good or MT_Free)")
    add_verdict_thresholds(p)


def add_verdict_thresholds(p: argparse.ArgumentParser) -> None:
    """``--min-confidence`` and ``--min-margin``, the verdict policy's CHECK thresholds (``core.config``)."""
    from core.config import DEFAULT_MIN_CONFIDENCE, DEFAULT_MIN_MARGIN

    p.add_argument(
        "--min-confidence",
        type=float,
        default=DEFAULT_MIN_CONFIDENCE,
        help="CHECK below this top probability",
    )
    p.add_argument(
        "--min-margin",
        type=float,
        default=DEFAULT_MIN_MARGIN,
        help="CHECK below this lead over the runner-up",
    )


def add_lab_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``adapt``, ``run`` and ``report`` on the ``metainspect-lab`` sub-parsers."""
    from core.config import DEFAULT_ADAPT_STEPS

    p = sub.add_parser(
        "adapt", help="adapt a model to K labelled images per class (as the app does) and save it"
    )
    _model(p, "base model: " + MODEL_HELP)
    p.add_argument(
        "--support",
        "--data",
        dest="support",
        required=True,
        help="labelled folder or .zip (one folder per class)",
    )
    p.add_argument("--subdir", default=None, help="only read below this folder")
    p.add_argument("--shots", type=int, required=True, help="images per class, chosen at random (0 = all)")
    p.add_argument("--seed", type=int, default=0, help="which images are chosen")
    p.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_ADAPT_STEPS,
        help="adaptation steps (default: the model's own, as in the app)",
    )
    p.add_argument("--out", required=True, help="model file to write")
    p.add_argument("--ok-class", default=None, help="with --workspace: the class not flagged as a defect")
    _device(p)
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("run", help="classify every image of a folder/zip or every part of a video into a CSV")
    _model(p)
    p.add_argument("--data", required=True, help="folder or .zip of images (any layout), or a video file")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument(
        "--batch", type=int, default=None,
        help="images per forward pass (default: by input size, 4 at 224 px, 8 at 160 px)",
    )  # fmt: skip
    p.add_argument(
        "--decode-threads", type=int, default=2, help="threads decoding images ahead of the network"
    )
    _policy(p)
    _device(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="score a labelled folder and write report.html, metrics.json and CSVs")
    _model(p)
    p.add_argument("--data", required=True, help="labelled folder or .zip (one folder per class)")
    p.add_argument("--subdir", default=None, help="only read below this folder")
    p.add_argument("--out", required=True, help="report folder to write")
    p.add_argument(
        "--escape-cost", type=float, default=10.0, help="cost of a defective part passed as OK (default 10)"
    )
    p.add_argument("--reject-cost", type=float, default=1.0, help="cost of a good part rejected (default 1)")
    p.add_argument(
        "--check-cost", type=float, default=0.2, help="cost of a part checked by hand (default 0.2)"
    )
    p.add_argument(
        "--shots-list", default="1,2,5,10,20", help="K values of the shots curve (comma-separated)"
    )
    p.add_argument(
        "--repeats", type=int, default=5, help="random splits per K of the shots curve (0 = no curve)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the shots curve and bootstrap")
    _policy(p)
    _device(p)
    p.set_defaults(func=cmd_report)


def _setup(args: argparse.Namespace) -> LoadedCheckpoint:
    """Threads, then the model that --model/--workspace names, on --device."""
    from core.runtime import resolve_device, set_cpu_threads
    from core.storage.model_ref import load_model

    set_cpu_threads(args.threads)
    return load_model(args.model, workspace=args.workspace, device=resolve_device(args.device))


def cmd_adapt(args: argparse.Namespace) -> int:
    """Adapt, save the model (and record it in --workspace); prints a JSON summary on stdout."""
    from tqdm import tqdm

    from core.lab.adapt import lab_adapt
    from core.lab.run import check_writable
    from core.storage.model_ref import describe_model_ref

    out = Path(args.out)
    check_writable(out.parent)
    base = _setup(args)
    gen = lab_adapt(
        base, args.support, out, shots=args.shots, seed=args.seed, steps=args.steps, subdir=args.subdir,
        base_ref=describe_model_ref(args.model, args.workspace), workspace=args.workspace, ok_class=args.ok_class,
    )  # fmt: skip
    with tqdm(desc="adapt", unit="step", file=sys.stderr, disable=args.quiet) as bar:
        while True:
            try:
                rec = next(gen)
            except StopIteration as stop:
                result = stop.value
                break
            bar.total = rec.steps
            bar.update(max(0, rec.step - bar.n))
            if rec.loss is not None:
                bar.set_postfix(loss=f"{rec.loss:.4f}", refresh=False)
    print(json.dumps(result.summary()))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Classify --data into --out (CSV); a summary line goes to stderr."""
    from collections import Counter

    from tqdm import tqdm

    from core.inference.verdict import VerdictPolicy
    from core.lab.metrics import find_ok_class
    from core.lab.run import check_writable, classify_items, open_run_input, write_results
    from core.lab.scoring import Scorer

    out = Path(args.out)
    check_writable(out.parent)
    ck = _setup(args)
    scorer = Scorer(ck)
    ok = find_ok_class(scorer.class_names, args.ok_class)
    defects = frozenset(c for c in scorer.class_names if ok is not None and c != ok)
    policy = VerdictPolicy(args.min_confidence, args.min_margin, defects)
    rows = []
    t0 = time.perf_counter()
    with (
        open_run_input(args.data) as run_input,
        tqdm(total=run_input.total, desc="run", unit="img", file=sys.stderr, disable=args.quiet) as bar,
    ):
        for row in classify_items(
            scorer, run_input.items, policy, batch=args.batch, decode_threads=args.decode_threads
        ):
            rows.append(row)
            bar.update(1)
    write_results(out, rows, scorer.class_names)
    elapsed = time.perf_counter() - t0
    verdicts = Counter(r.verdict or "ERROR" for r in rows)
    counts = "".join(f"{k} {v}; " for k, v in sorted(verdicts.items()))
    print(
        f"{len(rows)} rows -> {out} ({counts}{len(rows) / max(elapsed, 1e-9):.1f} images/s)"
        + ("" if ok else "; no OK class found, so no part is REJECT (pass --ok-class)"),
        file=sys.stderr,
    )
    if not rows and run_input.frames_read is not None:
        frames = run_input.frames_read()
        print(
            f"warning: no part found in {args.data}: "
            + (
                f"the part trigger saw none pass in its {frames} frame(s) (a part must enter and leave the view)"
                if frames
                else "it has no readable frames"
            ),
            file=sys.stderr,
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report folder; prints the path of report.html on stdout."""
    from tqdm import tqdm

    from core.lab.metrics import Costs
    from core.lab.report import ReportOptions, build_report
    from core.lab.report_files import write_report
    from core.lab.run import check_writable
    from core.storage.model_ref import describe_model_ref

    out = Path(args.out)
    check_writable(out)
    try:
        shots = tuple(sorted({int(k) for k in args.shots_list.split(",") if k.strip()}))
    except ValueError:
        raise ValueError(
            f"--shots-list must be comma-separated whole numbers, got {args.shots_list!r}"
        ) from None
    options = ReportOptions(
        costs=Costs(args.escape_cost, args.reject_cost, args.check_cost),
        ok_class=args.ok_class,
        min_confidence=args.min_confidence,
        min_margin=args.min_margin,
        shots=shots,
        repeats=args.repeats,
        seed=args.seed,
    )
    ck = _setup(args)
    gen = build_report(
        ck, args.data, options, subdir=args.subdir, model_ref=describe_model_ref(args.model, args.workspace)
    )
    current = ""
    with tqdm(desc="report", file=sys.stderr, disable=args.quiet) as bar:
        while True:
            try:
                stage, done, total = next(gen)
            except StopIteration as stop:
                report = stop.value
                break
            if stage != current:  # one bar, restarted for each stage (embed, shots curve)
                current = stage
                bar.set_description(stage, refresh=False)
                bar.reset(total=total)
            bar.update(done - bar.n)
    paths = write_report(report, out)
    print(paths["report.html"])
    return 0
