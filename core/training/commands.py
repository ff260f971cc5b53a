"""Handlers behind ``metainspect-lab`` sub-commands (argparse namespaces in, exit codes out).

Kept apart from :mod:`core.cli` (which only builds parsers) so each handler is a small, testable function.
Progress goes to stderr through tqdm; results go to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Generator, Iterator
from typing import Any

from tqdm import tqdm

from core.config import EvalConfig, TrainConfig
from core.data import ImageFolderDataset, split_classes
from core.imaging.preprocess import Preprocess
from core.runtime import resolve_device, set_cpu_threads
from core.storage.model_ref import load_model
from core.training.evaluate import iter_evaluate
from core.training.meta_train import meta_train
from core.training.progress import CancelToken

log = logging.getLogger(__name__)

#: TrainConfig fields settable from the command line (flag name = field name with dashes).
TRAIN_FLAGS = (
    "algo", "backbone", "ways", "shots", "queries", "meta_batch", "inner_steps", "inner_lr", "outer_lr",
    "iterations", "val_every", "val_episodes", "checkpoint_every", "image_size", "channels", "width",
    "seed", "device",
)  # fmt: skip


def _preprocess(image_size: int, channels: int) -> Preprocess:
    # grey Omniglot-style data is used as is; RGB gets the usual mid-range centring
    if channels == 1:
        return Preprocess(image_size=image_size, channels=1)
    return Preprocess(image_size=image_size, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults < ``--config FILE.json`` < explicit flags."""
    base: dict[str, Any] = {}
    if getattr(args, "config", None):
        base = TrainConfig.from_json(args.config).to_dict()
    for name in TRAIN_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            base[name] = value
    if getattr(args, "rotations", False):
        base["rotations"] = True
    if getattr(args, "first_order", False):
        base["first_order"] = True
    return TrainConfig.from_dict(base)


@contextlib.contextmanager
def _cancel_on_interrupt(cancel: CancelToken) -> Iterator[None]:
    """First Ctrl-C (SIGINT) asks training to stop after the current iteration and save; no traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda _sig, _frame: cancel.cancel())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_meta_train(args: argparse.Namespace) -> int:
    """Meta-train and write ``--out``; validation on a held-out share of the training classes."""
    cfg = train_config_from_args(args)
    set_cpu_threads(args.threads)
    data = ImageFolderDataset.from_path(
        args.data, _preprocess(cfg.image_size, cfg.channels), subdir=args.subdir
    )
    train_ids: list[int] | None = None
    val_ids: list[int] | None = None
    if cfg.val_every:
        train_ids, val_ids = split_classes(data, (1.0 - args.val_fraction, args.val_fraction), seed=cfg.seed)
    # Under torchrun only rank 0 talks; the other ranks train silently.
    quiet = args.quiet or os.environ.get("RANK", "0") != "0"
    if not quiet:
        print(
            f"meta-train {cfg.algo} on {data.source} ({len(data)} classes, {data.num_images} images, "
            f"{len(data.skipped)} skipped) device={resolve_device(cfg.device)}",
            file=sys.stderr,
        )
    cancel = CancelToken()
    gen = meta_train(
        cfg, data, train_classes=train_ids, val_classes=val_ids, out=args.out, resume=args.resume, cancel=cancel,
        provenance={"subdir": args.subdir},
    )  # fmt: skip
    last = None
    with (
        _cancel_on_interrupt(cancel),
        tqdm(total=cfg.iterations, desc=cfg.algo, unit="it", file=sys.stderr, disable=quiet) as bar,
    ):
        for rec in gen:
            last = rec
            if rec.cancelled:
                break
            bar.update(max(0, rec.iteration - bar.n))  # a resumed run starts part-way
            post = {
                "loss": f"{rec.meta_loss:.3f}",
                "acc": f"{rec.accuracy:.3f}",
                "tasks/s": f"{rec.tasks_per_s:.1f}",
            }
            if rec.val_accuracy is not None:
                post["val"] = f"{rec.val_accuracy:.3f}"
                bar.write(f"iteration {rec.iteration}: val accuracy {rec.val_accuracy:.4f}", file=sys.stderr)
            bar.set_postfix(post, refresh=False)
    if last is not None:
        status = "cancelled" if last.cancelled else "done"
        print(f"{status} at iteration {last.iteration}; checkpoint {args.out}", file=sys.stderr)
    return 0


def _load_eval_data(args: argparse.Namespace, preprocess: Preprocess) -> ImageFolderDataset:
    return ImageFolderDataset.from_path(args.data, preprocess, subdir=args.subdir)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """N-way K-shot evaluation of a checkpoint; ``--json`` prints one JSON object on stdout."""
    set_cpu_threads(args.threads)
    ck = load_model(args.checkpoint, workspace=args.workspace, device=resolve_device(args.device))
    data = _load_eval_data(args, ck.preprocess)
    cfg = EvalConfig(
        ways=args.ways,
        shots=args.shots,
        queries=args.queries,
        episodes=args.episodes,
        seed=args.seed,
        steps=args.steps,
    )
    result = None
    with tqdm(total=cfg.episodes, desc="evaluate", unit="ep", file=sys.stderr, disable=args.quiet) as bar:
        for rec in iter_evaluate(ck.learner, data, cfg):
            bar.update(rec.episode - bar.n)
            bar.set_postfix(acc=f"{rec.accuracy:.4f}", ci95=f"{rec.ci95:.4f}", refresh=False)
            result = rec.result or result
    assert result is not None
    if args.json:
        out = {**result.to_dict(), "checkpoint": str(ck.path), "sha256": ck.sha256, "data": data.source}
        print(json.dumps(out))
    else:
        print(
            f"{cfg.ways}-way {cfg.shots}-shot: accuracy {100 * result.accuracy:.2f}% "
            f"+- {100 * result.ci95:.2f}% (95% CI, {result.episodes} episodes, {cfg.queries} queries/class)"
        )
    return 0


def cmd_evaluate_anomaly(args: argparse.Namespace) -> int:
    """Image AUROC of the anomaly scorer over ``--draws`` draws of ``--shots`` OK images (app defaults)."""
    from core.data.folder import read_image_folders
    from core.inference.anomaly import AnomalyConfig, find_trunk
    from core.lab.anomaly_eval import AnomalyDraw, iter_evaluate_anomaly, split_ok_defective, summarise

    set_cpu_threads(args.threads)
    ck = load_model(
        args.checkpoint, workspace=getattr(args, "workspace", None), device=resolve_device(args.device)
    )
    trunk = find_trunk(ck.learner.model)
    data = read_image_folders(args.data, subdir=args.subdir)
    ok, bad, names = split_ok_defective(data, args.ok_class)
    gen = iter_evaluate_anomaly(
        trunk, ok, bad, shots=args.shots, draws=args.draws, seed=args.seed, config=AnomalyConfig(),
        weights_sha256=str(getattr(ck.learner.model, "weights_sha256", "") or ""),
    )  # fmt: skip

    def shown() -> Generator[AnomalyDraw, None, tuple[int, int]]:
        """The draws, with a progress bar on stderr."""
        with tqdm(
            total=args.draws, desc="evaluate-anomaly", unit="draw", file=sys.stderr, disable=args.quiet
        ) as bar:
            while True:
                try:
                    rec = next(gen)
                except StopIteration as stop:
                    return stop.value
                bar.update(1)
                bar.set_postfix(auroc=f"{rec.auroc:.4f}", refresh=False)
                yield rec

    result = summarise(shown(), shots=args.shots, ok_class=args.ok_class, defect_classes=names)
    if args.json:
        out = {**result.to_dict(), "checkpoint": str(ck.path), "sha256": ck.sha256, "data": data.source}
        print(json.dumps(out))
    else:
        print(
            f"anomaly scorer, {args.shots} OK shots: image AUROC {result.auroc:.4f} (min {result.auroc_min:.4f} "
            f"over {result.draws} draws; {result.ok_tested} OK and {result.defects_tested} defective images "
            f"scored per draw; defective = {', '.join(names)})"
        )
        fr, esc = result.at_threshold
        print(f"at the scorer's own threshold (as the app): {fr:.1%} false rejects, {esc:.1%} escapes")
        print("threshold sweep (best threshold per draw, mean over draws):")
        for row in result.sweep():
            print(
                f"  false rejects <= {row.budget:.0%}: {row.false_reject_rate:.1%} rejected, "
                f"{row.escape_rate:.1%} of defective parts escape"
            )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Print the registered learners and models."""
    from core.meta import list_learners
    from core.models import list_models

    print("learners: " + ", ".join(list_learners()))
    print("models:   " + ", ".join(list_models()))
    return 0
