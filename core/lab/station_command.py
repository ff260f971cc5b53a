"""``metainspect-lab station``: run the inspection line without a window.

    metainspect-lab station --source synthetic:variant=copper_disc --workspace ws --demo-teach 5 --parts 200 --json

Opens (or creates) the workspace, restores its live model (or activates ``--model`` when it is a version id),
optionally teaches from the synthetic line's ground truth (``--demo-teach K``: K parts of each class, then
adapts), then judges ``--parts`` parts and prints what it saw.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from typing import Any

from core.lab.commands import add_verdict_thresholds
from core.runtime import DEVICE_CHOICES

EXIT_USAGE = 2


def add_station(sub: argparse._SubParsersAction) -> None:
    """Register the ``station`` sub-command (called from :mod:`core.cli`)."""
    p = sub.add_parser("station", help="run the inspection line headless: teach, adapt, judge parts, report")
    p.add_argument(
        "--source", required=True, help="camera source: synthetic:seed=1, camera:0, file:video.mp4, ..."
    )
    p.add_argument("--workspace", required=True, help="workspace folder (created when missing)")
    p.add_argument(
        "--model",
        default="default",
        help="meta-trained checkpoint to teach from ('default': the shipped one), or the id of a model version "
        "stored in the workspace to make live",
    )
    p.add_argument(
        "--demo-teach",
        type=int,
        default=0,
        metavar="K",
        help="synthetic line: label K parts per class, adapt",
    )
    p.add_argument(
        "--parts", type=int, default=100, metavar="N", help="parts to judge after teaching (default 100)"
    )
    p.add_argument("--steps", type=int, default=0, help="adaptation steps (default 0: the model's own)")
    add_verdict_thresholds(p)
    p.add_argument(
        "--capture-mode",
        choices=["auto", "latest", "every"],
        default="auto",
        help="latest: newest frame wins (live camera); every: no frame dropped; auto: every for files/folders",
    )
    p.add_argument("--timeout", type=float, default=0.0, help="give up after this many seconds (0: never)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the result")
    p.add_argument("--device", default="auto", help=f"{' | '.join(DEVICE_CHOICES)} | cuda:N (default auto)")
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: half the cores)"
    )
    p.set_defaults(func=cmd_station)


def _drain(parts: Any, until: Any, cancel: Any) -> bool:
    """Pull parts until ``until()`` holds; False when the source ended or the time ran out first."""
    for _ in parts:
        if until():
            return True
    return until() and not cancel.is_set()


def cmd_station(args: argparse.Namespace) -> int:
    from core.camera import parse_spec
    from core.runtime import set_cpu_threads
    from core.station import CameraStatus, Message, Station, StationError, StationSettings
    from core.storage import Workspace
    from core.training.progress import CancelToken

    if args.parts < 0 or args.demo_teach < 0:
        raise ValueError("--parts and --demo-teach must be 0 or more")
    set_cpu_threads(args.threads)
    version_id = int(args.model) if args.model.isdigit() else None
    settings = StationSettings(
        source=args.source,
        device=args.device,
        checkpoint="default" if version_id is not None else args.model,
        min_confidence=args.min_confidence,
        min_margin=args.min_margin,
        adapt_steps=args.steps,
        capture_mode=args.capture_mode,
    )
    if not args.verbose:  # the station's messages are printed below; not twice
        logging.getLogger("core.station.labelling").setLevel(logging.CRITICAL)
    problems: list[str] = []
    unreadable: list[str] = []  # why a recorded video or folder cannot be read (it will not recover)
    recorded = parse_spec(args.source)[0] in ("file", "folder")
    cancel = CancelToken()
    with Workspace.open(args.workspace) as ws:
        station = Station(ws, settings)
        station.summarize_after_adapt = False  # the report scores the line, not the examples

        def on_event(event: object) -> None:
            if isinstance(event, Message) and event.level != "info":
                problems.append(event.text)
                print(f"metainspect-lab station: {event.level}: {event.text}", file=sys.stderr)
            elif isinstance(event, CameraStatus) and event.state in ("reconnecting", "lost"):
                if recorded:  # a live camera may come back; a file that fails once fails again
                    unreadable.append(event.reason)
                    cancel.cancel()
                else:
                    print(f"metainspect-lab station: camera {event.state}: {event.reason}", file=sys.stderr)

        station.events.subscribe(on_event)
        station.ensure_default_classes()
        if version_id is not None:
            if station.activate(version_id) is None:
                return EXIT_USAGE  # its message is on stderr already
        else:
            station.restore_model()
        if args.demo_teach and not station.start_auto_teach(args.demo_teach):
            return EXIT_USAGE  # its message is on stderr already
        if args.demo_teach and not station.load_base_model():  # loaded now: labelled parts are embedded ahead
            return EXIT_USAGE  # its message is on stderr already
        if not args.demo_teach and station.classifier is None:
            raise StationError(
                f"workspace {args.workspace} has no live model; teach first (--demo-teach K on the synthetic "
                "line, or label and adapt in the app)"
            )
        timer = threading.Timer(args.timeout, cancel.cancel) if args.timeout > 0 else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        parts = station.inspect(cancel)
        started = time.monotonic()
        adapt_s = None
        try:
            if args.demo_teach:
                if not _drain(parts, lambda: station.auto_teach_target == 0, cancel):
                    raise StationError(
                        f"the source ended or time ran out before {args.demo_teach} parts of each class passed"
                    )
                t0 = time.perf_counter()
                gen = station.adapt(cancel)
                for _ in gen:
                    pass
                adapt_s = time.perf_counter() - t0
                if station.classifier is None:
                    if not problems:
                        raise StationError("adaptation did not finish")
                    return EXIT_USAGE  # its message is on stderr already
            station.stats.reset()
            if args.parts:
                _drain(parts, lambda: station.stats.parts >= args.parts, cancel)
            health = station.health()
        finally:
            parts.close()
            if timer is not None:
                timer.cancel()
            station.close(close_workspace=False)
        if unreadable:
            raise StationError(f"the source cannot be read: {unreadable[0]}")
        summary = station.stats.summary().to_dict()
        version = station.version
        result = {
            **summary,
            "camera_fps": round(health.fps, 2),
            "drops": health.drops,
            "model_version": version.id if version is not None else None,
            "adapt_s": None if adapt_s is None else round(adapt_s, 2),
            "examples": sum(ws.examples.counts().values()),
            "logged": ws.inspections.count(),
            "wall_s": round(time.monotonic() - started, 2),
            "timed_out": cancel.is_set(),
        }
    if args.json:
        print(json.dumps(result))
    else:
        acc = "n/a (no ground truth)" if result["accuracy"] is None else f"{result['accuracy']:.1%}"
        print(f"parts {result['parts']}  accuracy {acc}  model v{result['model_version']}")
        print(f"verdicts {result['verdicts']}")
        print(f"classes  {result['classes']}")
        print(
            f"{result['fps']} frames/s judged; verdict latency p50 {result['latency_p50_ms']} ms, "
            f"p99 {result['latency_p99_ms']} ms"
        )
    if args.parts and result["parts"] < args.parts:
        print(
            f"metainspect-lab station: only {result['parts']} of {args.parts} parts were judged "
            f"({'time ran out' if cancel.is_set() else 'the source ended'})",
            file=sys.stderr,
        )
        return 1
    return 0


__all__ = ["add_station", "cmd_station"]
