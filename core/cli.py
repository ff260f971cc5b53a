"""metainspect-lab: the headless command line (meta-train, evaluate, adapt, run, report, list).

Each sub-command is one ``add_*`` function that builds its parser and names its handler; to add a command,
write another ``add_*`` and list it in :data:`SUBCOMMANDS`. Errors a user can fix (bad path, corrupt
checkpoint, unknown algorithm, too few images) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from core.lab.station_command import add_station
from core.runtime import DEVICE_CHOICES, keep_freed_memory

EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help=f"{' | '.join(DEVICE_CHOICES)} | cuda:N (default auto)")
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: METAINSPECT_THREADS or all)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _data(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--data", required=required, help="image-folder tree or .zip of one (one folder per class)"
    )
    p.add_argument("--subdir", default=None, help="only read below this folder, e.g. omniglot28/background")


def _handler(name: str) -> Handler:
    """Import handlers lazily so ``metainspect-lab --help`` stays instant (no torch import)."""

    def run(args: argparse.Namespace) -> int:
        from core.training import commands

        return int(getattr(commands, name)(args))

    return run


def add_meta_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("meta-train", help="meta-train a learner on episodes from an image-folder data set")
    _data(p)
    p.add_argument("--config", default=None, help="JSON file of TrainConfig fields (flags override it)")
    p.add_argument("--algo", default=None, help="learner name (see `metainspect-lab list`)")
    p.add_argument("--backbone", default=None, help="model name (see `metainspect-lab list`)")
    for flag, kind in (
        ("--ways", int), ("--shots", int), ("--queries", int), ("--meta-batch", int), ("--inner-steps", int),
        ("--inner-lr", float), ("--outer-lr", float), ("--iterations", int), ("--val-every", int),
        ("--val-episodes", int), ("--checkpoint-every", int), ("--image-size", int), ("--channels", int),
        ("--width", int), ("--seed", int),
    ):  # fmt: skip
        p.add_argument(flag, type=kind, default=None)
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of classes held out for validation")
    p.add_argument(
        "--rotations", action="store_true", help="each 90-degree rotation of a class is a new class"
    )
    p.add_argument("--first-order", action="store_true", help="first-order meta-gradient (MAML family)")
    p.add_argument("--out", required=True, help="checkpoint file to write")
    p.add_argument("--resume", default=None, help="checkpoint of an earlier run to continue")
    _common(p)
    p.set_defaults(func=_handler("cmd_meta_train"), device=None)


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="N-way K-shot accuracy with a 95%% confidence interval")
    p.add_argument(
        "--checkpoint", "--model", dest="checkpoint", required=True,
        help="model file, 'default' (the shipped model), or with --workspace: 'active' or a version number",
    )  # fmt: skip
    p.add_argument("--workspace", default=None, help="workspace folder (for 'active' or a version number)")
    _data(p)
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--episodes", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="inner adaptation steps (default: the learner's)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the result")
    _common(p)
    p.set_defaults(func=_handler("cmd_evaluate"))


def add_evaluate_anomaly(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate-anomaly",
        help="image AUROC of the anomaly scorer taught from K OK images (other classes count as defective)",
    )
    p.add_argument(
        "--checkpoint", required=True, help="checkpoint with an EfficientNet-Lite backbone, or 'default'"
    )
    _data(p)
    p.add_argument(
        "--ok-class", required=True, help="class folder of the OK parts; every other class is defective"
    )
    p.add_argument("--shots", type=int, required=True, help="OK images the scorer is taught from per draw")
    p.add_argument("--draws", type=int, default=5, help="random draws of the taught OK images (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object with the result")
    _common(p)
    p.set_defaults(func=_handler("cmd_evaluate_anomaly"))


def add_lab(sub: argparse._SubParsersAction) -> None:
    from core.lab.commands import add_lab_commands  # adapt, run, report

    add_lab_commands(sub)


def add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the registered learners and models")
    p.set_defaults(func=_handler("cmd_list"))


def add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="train a backbone from a training recipe (supervised and/or episodic stages on pooled data sets "
        "and synthetic variants) and save it (the fused model's CNN: resources/recipes/surface.json "
        "--texture-weight 1.0)",
    )
    p.add_argument("config", help="training recipe (JSON), e.g. resources/recipes/surface.json")
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.add_argument("--epochs", type=int, default=None, help="override the supervised stage's epochs")
    p.add_argument("--iterations", type=int, default=None, help="override the episodic stage's steps")
    p.add_argument(
        "--texture-weight", type=float, default=None, help="save as surface_fused with this weight"
    )

    def run(args: argparse.Namespace) -> int:
        from core.training.recipe_run import main as recipe_main

        forwarded = [args.config, "--out", args.out]
        for flag, value in (("--epochs", args.epochs), ("--iterations", args.iterations),
                            ("--texture-weight", args.texture_weight)):  # fmt: skip
            if value is not None:
                forwarded += [flag, str(value)]
        return recipe_main(forwarded)

    p.set_defaults(func=run)


def add_workspace(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("workspace", help="check, export or import a workspace (labels, models, verdicts)")
    group = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def handler(name: str) -> Handler:
        def run(args: argparse.Namespace) -> int:
            from core.storage import commands

            return int(getattr(commands, name)(args))

        return run

    check = group.add_parser("check", help="verify the database and every file; exit 1 if damaged")
    check.add_argument("--workspace", required=True, help="workspace folder")
    check.set_defaults(func=handler("cmd_workspace_check"))
    export = group.add_parser("export", help="write the workspace (or one model version) to one zip")
    export.add_argument("--workspace", required=True, help="workspace folder")
    export.add_argument("--out", required=True, help="zip file to write")
    export.add_argument("--model", type=int, default=None, help="only this model version and its examples")
    export.set_defaults(func=handler("cmd_workspace_export"))
    imp = group.add_parser("import", help="import a zip into a new or empty workspace")
    imp.add_argument("archive", help="zip written by `workspace export`")
    imp.add_argument("--workspace", required=True, help="new or empty workspace folder")
    imp.set_defaults(func=handler("cmd_workspace_import"))


def add_build_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build-model",
        help="build a model from a recipe file (the shipped one: resources/recipes/default.json)",
    )
    p.add_argument("recipe", help="JSON recipe: model, learner, preprocess")
    p.add_argument("--out", required=True, help="checkpoint to write")

    def run(args: argparse.Namespace) -> int:
        import json

        from core.training.shipped import build_shipped_model

        print(json.dumps(build_shipped_model(args.recipe, args.out)))
        return 0

    p.set_defaults(func=run)


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_meta_train,
    add_pretrain,
    add_build_model,
    add_evaluate,
    add_evaluate_anomaly,
    add_lab,
    add_list,
    add_workspace,
    add_station,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metainspect-lab", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (skipped images, ...)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's input or the machine's state, not a bug: one line, no traceback.

    OSError covers a full disk, a missing or unreadable file and a read-only folder; zipfile and zlib errors
    are a damaged archive given as data; SourceError a video or camera that cannot be opened.
    """
    import zipfile
    import zlib

    from core.camera.frame import SourceError
    from core.storage.checkpoint import CheckpointError
    from core.storage.errors import StorageError

    return (
        ValueError, CheckpointError, StorageError, SourceError, OSError, zipfile.BadZipFile, zlib.error, EOFError,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    keep_freed_memory()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("metainspect-lab: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as exc:
        from core.redact import redact_source

        # One line, whatever the message holds, and no camera password in it.
        text = redact_source(" ".join(str(exc).split())) or type(exc).__name__
        print(f"metainspect-lab {args.command}: error: {text}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
