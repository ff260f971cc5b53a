"""GUI benchmark: responsiveness while the camera runs and the model adapts, adapt-to-verdict time, memory.

Prints a markdown table. Usage::

    QT_QPA_PLATFORM=offscreen python bench/bench_gui.py [--adaptations 20] [--checkpoint default]

The real window (offscreen), the real session and workers, the synthetic line at 30 fps, the shipped model:

- heartbeat: a 10 ms QTimer on the GUI thread; the longest gap between two ticks (and the 99th percentile)
  while an adaptation runs beside the live camera (target: at most 50 ms);
- adapt-to-verdict: Adapt pressed -> the first verdict of the new model (6-way 5-shot; target at most 2 s);
- resident memory (VmRSS) of the process after each of ``--adaptations`` adaptations (target: at most 1 GB and
  flat within 50 MB).

``--watchdog`` also samples the GUI thread's stack whenever a heartbeat is late and reports where it was
(``bench/gui_stalls.py``).

``--startup N`` measures start-up instead: N launches of ``python -m app.main --exit-after-first-frame`` from
source on a fresh workspace, launch -> first live frame drawn (wall and the child's CPU time); with
``--startup-tree DIR`` the launches alternate between this tree and DIR (another checkout), for an A/B on a
busy machine. The frozen bundle's figure comes from ``bench/bench_bundle.sh``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SOURCE = "synthetic:seed=11,fps=30,defect_rate=0.83,variant=copper_disc"


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc; the bench runs there)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def launch_to_first_frame(tree: Path, source: str) -> tuple[float, float]:
    """One launch of the app in ``tree`` on a fresh workspace: (seconds to the first frame, child CPU s)."""
    with tempfile.TemporaryDirectory(prefix="metainspect-bench-start-") as tmp:
        env = dict(os.environ, PYTHONPATH=str(tree), HOME=tmp, XDG_CONFIG_HOME=tmp, XDG_DATA_HOME=tmp)
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.time()
        run = subprocess.run(
            [sys.executable, "-m", "app.main", "--workspace", str(Path(tmp) / "ws"), "--source", source,
             "--exit-after-first-frame"],
            cwd=tree, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    shown = [line for line in run.stdout.splitlines() if line.startswith("first frame at ")]
    if run.returncode != 0 or not shown:
        raise RuntimeError(f"no first frame from {tree} (exit {run.returncode}): {run.stderr[-500:]}")
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    return float(shown[0].split()[-1]) - t0, cpu


def startup(runs: int, source: str, other: str | None) -> int:
    """Print launch -> first frame for this tree (and ``other`` alternately): median and each run."""
    trees = {"this tree": Path(__file__).resolve().parents[1]}
    if other:
        trees[other] = Path(other).resolve()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    for i in range(runs):
        for name, tree in trees.items():
            results[name].append(launch_to_first_frame(tree, source))
            print(f"run {i + 1} {name}: {results[name][-1][0]:.2f} s", file=sys.stderr, flush=True)
    print(f"load average before/after: see uptime; {os.getloadavg()[0]:.1f} (1 min) at the end")
    print("| app | launch -> first frame, median (each run) | child CPU s, median |\n|---|---|---|")
    for name, rows in results.items():
        walls = sorted(w for w, _ in rows)
        cpus = sorted(c for _, c in rows)
        each = ", ".join(f"{w:.2f}" for w, _ in rows)
        print(f"| {name} | {walls[len(walls) // 2]:.2f} s ({each}) | {cpus[len(cpus) // 2]:.2f} |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adaptations", type=int, default=20)
    parser.add_argument("--per-class", type=int, default=5)
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--source", default=SOURCE)
    parser.add_argument(
        "--no-keep-freed", action="store_true", help="leave glibc's malloc as it is (compare resident memory)"
    )
    parser.add_argument(
        "--gaps-file", type=Path, default=None,
        help="append 'start_unix_s length_ms' for each heartbeat gap over 30 ms (for bench/proc_sampler.py)",
    )  # fmt: skip
    parser.add_argument(
        "--what-if-no-fsync", action="store_true",
        help="diagnostic only: os.fsync does nothing in this process (is the disk behind the stalls?)",
    )  # fmt: skip
    parser.add_argument("--baseline-s", type=float, default=20.0, help="heartbeat with the camera only")
    parser.add_argument(
        "--settle-s", type=float, default=2.0,
        help="seconds the line runs on after each summary before resident memory is sampled (also sampled at once)",
    )  # fmt: skip
    parser.add_argument(
        "--watchdog",
        action="store_true",
        help="sample the GUI thread's stack while a heartbeat is late and report the culprits (bench/gui_stalls.py)",
    )
    parser.add_argument("--late-ms", type=float, default=30.0, help="--watchdog: a tick this late is a stall")
    parser.add_argument(
        "--startup", type=int, default=0, metavar="N", help="time N launches to the first frame"
    )
    parser.add_argument("--startup-tree", help="--startup: alternate with the app of this checkout (A/B)")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.startup:
        return startup(args.startup, args.source, args.startup_tree)

    from PySide6.QtCore import QCoreApplication, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from app.main import build_window
    from app.preferences import Preferences
    from core.runtime import keep_freed_memory, set_cpu_threads
    from core.storage import Workspace

    threads = set_cpu_threads()
    if args.what_if_no_fsync:
        os.fsync = lambda fd: None  # never in the app: durability (ADR 0004) needs it
    if not args.no_keep_freed:
        keep_freed_memory()  # as the app does
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from app.refcount_guard import guard_singletons

    pinned = guard_singletons()  # without it this PySide6 aborts the process within minutes

    def write_gaps(ticks: list[float]) -> None:
        if args.gaps_file is None:
            return
        to_unix = time.time() - time.perf_counter()
        with args.gaps_file.open("a") as fh:
            for a, b in itertools.pairwise(ticks):
                if (b - a) * 1000 > 30:
                    fh.write(f"{a + to_unix:.4f} {(b - a) * 1000:.1f}\n")

    def wait(done: object, timeout_s: float, what: str) -> None:
        start = time.monotonic()
        while not done():  # type: ignore[operator]
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(f"{what} did not happen within {timeout_s:.0f} s")
            app.processEvents()
            time.sleep(0.002)

    with tempfile.TemporaryDirectory(prefix="metainspect-bench-gui-") as tmp:
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(Path(tmp) / "qs"))
        QCoreApplication.setOrganizationName("MetaInspectBench")
        prefs = Preferences(
            source=args.source, checkpoint=args.checkpoint, workspace=str(Path(tmp) / "ws"), device="cpu"
        )
        window = build_window(
            prefs, Workspace.open(prefs.workspace_path()), load_in_background=True
        )  # as the app
        window.show()
        session = window.session
        wait(window.frame_view.has_frame, 60, "first frame")
        wait(lambda: not session.model_loading(), 300, "the model loading")
        rss_start = rss_mb()
        session.start_auto_teach(args.per_class)
        wait(lambda: session.auto_teach_target == 0, 600, "teaching from the demo line")

        ticks: list[float] = []
        heartbeat = QTimer()
        heartbeat.setInterval(10)
        heartbeat.timeout.connect(lambda: ticks.append(time.perf_counter()))
        sampler = None
        if args.watchdog:
            from gui_stalls import StallSampler

            sampler = StallSampler(threading.get_ident(), late_ms=args.late_ms)
            heartbeat.timeout.connect(sampler.tick)
            sampler.start()
        # Baseline: the same heartbeat with only the camera and verdicts running (what the machine alone costs).
        ticks.clear()
        heartbeat.start()
        t_end = time.monotonic() + args.baseline_s
        wait(lambda: time.monotonic() > t_end, args.baseline_s + 5, "baseline")
        heartbeat.stop()
        baseline_ms = [(b - a) * 1000 for a, b in itertools.pairwise(ticks)]
        write_gaps(ticks)
        finished: list[str] = []
        session.adapt_finished.connect(finished.append)
        new_verdicts: list[float] = []
        session.part_seen.connect(
            lambda r: new_verdicts.append(time.perf_counter()) if finished and r.verdict is not None else None
        )
        gaps_ms: list[float] = []
        to_verdict_s: list[float] = []
        adapt_s: list[float] = []
        rss: list[float] = []  # --settle-s after each summary
        rss_now: list[float] = []  # right after each summary
        for i in range(args.adaptations):
            wait(lambda: not session.adapting(), 120, "the previous adaptation's summary")
            finished.clear()
            new_verdicts.clear()
            ticks.clear()
            heartbeat.start()
            if sampler is not None:
                sampler.arm(True)
            t0 = time.perf_counter()
            session.start_adaptation()
            wait(lambda: bool(finished), 600, "adaptation")
            adapt_s.append(time.perf_counter() - t0)
            if "is live" not in finished[0]:
                raise RuntimeError(finished[0])
            wait(lambda: bool(new_verdicts), 120, "first verdict of the new model")
            to_verdict_s.append(new_verdicts[0] - t0)
            # The heartbeat runs on through the check of the new model and the Adaptation view showing it.
            wait(lambda: not session.adapting(), 120, "the adaptation's summary")
            checked = time.perf_counter() + 0.2
            wait(lambda c=checked: time.perf_counter() > c, 5, "the summary's signals")
            rss_now.append(rss_mb())
            # the heartbeat goes on while the line settles: the app gives the adaptation's freed memory back
            # in that time (app/session.py), and that must not stall the GUI thread either
            settled = time.perf_counter() + args.settle_s  # the line keeps running meanwhile
            wait(lambda c=settled: time.perf_counter() > c, args.settle_s + 5, "the line to settle")
            heartbeat.stop()
            if sampler is not None:
                sampler.arm(False)
            gaps_ms.extend((b - a) * 1000 for a, b in itertools.pairwise(ticks))
            write_gaps(ticks)
            rss.append(rss_mb())
            print(
                f"adaptation {i + 1}: {adapt_s[-1]:.1f} s, first verdict after {to_verdict_s[-1]:.1f} s, "
                f"longest GUI gap so far {max(gaps_ms):.0f} ms, RSS {rss_now[-1]:.0f} MB at once, "
                f"{rss[-1]:.0f} MB after {args.settle_s:g} s",
                file=sys.stderr,
                flush=True,
            )
        window.confirm_close = lambda what: True  # the last run's check may still be going: no dialog
        window.close()

    gaps_sorted = sorted(gaps_ms)
    p99 = gaps_sorted[int(0.99 * (len(gaps_sorted) - 1))]
    after_first = rss[1:] or rss
    rows = [
        ("machine", f"{platform.machine()}, {os.cpu_count()} cores, torch threads {threads}"),
        (
            "glibc keeps freed memory (core.runtime.keep_freed_memory, as the app)",
            str(not args.no_keep_freed),
        ),
        ("None/True/False pinned against the PySide6 refcount bug", str(pinned)),
        ("os.fsync a no-op (--what-if-no-fsync, diagnostic)", str(args.what_if_no_fsync)),
        ("adaptations", f"{args.adaptations} x 6-way {args.per_class}-shot, camera {args.source}"),
        (
            "longest GUI-thread gap, 10 ms heartbeat, Adapt pressed -> its summary shown + the settle time (--settle-s)",
            f"{max(gaps_ms):.0f} ms (target <= 50)",
        ),
        ("99th percentile gap", f"{p99:.0f} ms"),
        (
            f"baseline, camera and verdicts only ({args.baseline_s:.0f} s): longest / 99th percentile gap",
            f"{max(baseline_ms):.0f} ms / {sorted(baseline_ms)[int(0.99 * (len(baseline_ms) - 1))]:.0f} ms",
        ),
        ("adaptation (median, max)", f"{sorted(adapt_s)[len(adapt_s) // 2]:.1f} s, {max(adapt_s):.1f} s"),
        (
            "Adapt pressed -> first verdict of the new model (median, max)",
            f"{sorted(to_verdict_s)[len(to_verdict_s) // 2]:.1f} s, {max(to_verdict_s):.1f} s (target <= 2)",
        ),
        ("RSS before teaching", f"{rss_start:.0f} MB"),
        (
            "RSS after adaptation 1 / last / max",
            f"{rss[0]:.0f} / {rss[-1]:.0f} / {max(rss):.0f} MB (target <= 1024)",
        ),
        (
            f"RSS spread after adaptation 2..N, {args.settle_s:g} s after each summary",
            f"{max(after_first) - min(after_first):.0f} MB (target <= 50)",
        ),
        (
            "same, sampled right after each summary (0.2 s)",
            f"{max(rss_now[1:] or rss_now) - min(rss_now[1:] or rss_now):.0f} MB; max {max(rss_now):.0f} MB",
        ),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    if sampler is not None:
        sampler.stop()
        print("\n" + sampler.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
