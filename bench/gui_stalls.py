"""Who blocks the GUI thread: a watchdog for ``bench/bench_gui.py --watchdog``.

A background thread checks every few milliseconds how long ago the GUI heartbeat last ticked. While a tick is
late it samples the GUI thread's Python stack (``faulthandler.dump_traceback``) and, once per stall, the CPU time each
thread of the process used during it and waited runnable for a core (``/proc/self/task/*/schedstat``), so the
report names the code the GUI thread was in and the threads that had the cores meanwhile.

Reading the samples: a stack that ends in the bench's own wait loop (``processEvents``) means the GUI thread was
not running Python: inside Qt's C++ (painting, layout), waiting for the interpreter lock, or not scheduled.
The per-thread CPU table tells those apart (a busy worker thread while the GUI thread used no CPU: contention;
the GUI thread runnable without a core: the cores were taken; neither: it slept, on the lock or on I/O).
"""

from __future__ import annotations

import collections
import faulthandler
import gc
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[1])
CLOCK_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[str, tuple[float, float]]:
    """Per thread of this process, keyed ``name/tid`` (the Python thread's name where there is one, else the
    kernel's: Qt pool threads, OpenMP/torch threads): seconds it ran on a core so far, and seconds it waited
    runnable for a core (``/proc/self/task/*/schedstat``, nanoseconds; 10 ms ticks of ``stat`` where the
    kernel has no schedstat, without the waiting time)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, tuple[float, float]] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            sched = (task / "schedstat").read_text().split() if (task / "schedstat").exists() else []
        except OSError:  # the thread ended meanwhile
            continue
        name = names.get(int(task.name)) or stat[stat.index("(") + 1 : stat.rindex(")")]
        if len(sched) >= 2:
            out[f"{name}/{task.name}"] = (int(sched[0]) / 1e9, int(sched[1]) / 1e9)
        else:
            fields = stat[stat.rindex(")") + 2 :].split()
            out[f"{name}/{task.name}"] = ((int(fields[11]) + int(fields[12])) * CLOCK_TICK_S, 0.0)
    return out


def machine_steal_s() -> float:
    """Seconds of CPU the hypervisor gave to others (``steal`` in ``/proc/stat``, all cores), 0 if unknown."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) * CLOCK_TICK_S
    except (OSError, IndexError, ValueError):
        return 0.0


def short_stack(dump: str, ident: int, depth: int = 6) -> tuple[str, ...]:
    """Thread ``ident``'s innermost ``depth`` frames from a :func:`faulthandler.dump_traceback` text, as
    ``file:line function``, innermost first (paths relative to the repo)."""
    out: list[str] = []
    inside = False
    for line in dump.splitlines():
        if line.startswith(("Thread 0x", "Current thread 0x")):
            inside = int(line.split("0x", 1)[1].split()[0], 16) == ident
        elif inside and line.startswith("  File ") and len(out) < depth:
            name, rest = line[len('  File "') :].split('", line ', 1)
            lineno, _, func = rest.partition(" in ")
            name = name[len(REPO) + 1 :] if name.startswith(REPO) else "/".join(name.split("/")[-2:])
            out.append(f"{name}:{lineno} {func}")
    return tuple(out) or ("(no Python frame)",)


def culprit(stack: tuple[str, ...]) -> str:
    """The innermost frame of the project's own code (app/, core/), else the innermost frame."""
    for entry in stack:
        if entry.startswith(("app/", "core/")):
            return entry
    return stack[0] if stack else "?"


@dataclass
class Stall:
    started: float  # the heartbeat tick it followed (perf_counter)
    length_ms: float = 0.0
    stacks: list[tuple[str, ...]] = field(default_factory=list)
    others: dict[str, tuple[str, ...]] = field(default_factory=dict)  # other threads at its first sample
    cpu_start: dict[str, tuple[float, float]] = field(default_factory=dict)
    cpu_used: dict[str, float] = field(default_factory=dict)  # seconds on a core, per thread
    cpu_waited: dict[str, float] = field(default_factory=dict)  # seconds runnable without a core, per thread
    steal_start: float = 0.0
    steal_s: float = 0.0  # the hypervisor's steal over the machine's cores (10 ms ticks)


class StallSampler(threading.Thread):
    """Samples the GUI thread while its heartbeat is more than ``late_ms`` late; call :meth:`tick` per beat."""

    def __init__(self, gui_ident: int, late_ms: float = 30.0, every_ms: float = 5.0) -> None:
        super().__init__(name="stall-sampler", daemon=True)
        self.gui_ident = gui_ident
        self.late_s = late_ms / 1000
        self.every_s = every_ms / 1000
        self.last_tick = time.perf_counter()
        self.armed = False
        self.stalls: list[Stall] = []
        self._current: Stall | None = None
        self._halt = threading.Event()
        # in memory where the kernel allows: faulthandler writes holding the interpreter lock, and a file on
        # disk made the sampler itself wait behind the app's fsyncs
        self._dump = (
            open(os.memfd_create("stall-dumps"), "w+")  # noqa: SIM115  (closed in stop())
            if hasattr(os, "memfd_create")
            else tempfile.TemporaryFile("w+")  # noqa: SIM115
        )
        self.gc_pauses: list[tuple[int, float, str]] = []  # (generation, ms, thread) of collections >= 10 ms
        self._gc_start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        # the garbage collector holds the interpreter lock throughout: a long pass stalls every thread
        if phase == "start":
            self._gc_start = time.perf_counter()
            return
        ms = (time.perf_counter() - self._gc_start) * 1000
        if ms >= 10.0:
            self.gc_pauses.append((info["generation"], ms, threading.current_thread().name))

    def tick(self) -> None:
        self.last_tick = time.perf_counter()

    def arm(self, on: bool) -> None:
        """Watch only while the heartbeat runs (between beats the bench itself pauses it)."""
        self.last_tick = time.perf_counter()
        self.armed = on

    def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        self._halt.set()
        self.join(2.0)
        self._dump.close()

    def run(self) -> None:
        while not self._halt.wait(self.every_s):
            last = self.last_tick
            late = time.perf_counter() - last
            current = self._current
            if current is not None and (current.started != last or not self.armed):
                self._close(current)
            if not self.armed or late < self.late_s:
                continue
            if self._current is None or self._current.started != last:
                self._current = Stall(started=last, cpu_start=thread_cpu(), steal_start=machine_steal_s())
                self.stalls.append(self._current)
            gui, others = self._stacks()
            self._current.stacks.append(gui)
            if not self._current.others:
                self._current.others = others
            self._current.length_ms = late * 1000

    def _stacks(self) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        """The GUI thread's stack and every other Python thread's (by name; the sampler left out)."""
        # faulthandler reads the stacks in C: holding a frame object here would keep the GUI thread's locals
        # (a QPainter) alive past their function and crash Qt.
        self._dump.seek(0)
        self._dump.truncate()
        faulthandler.dump_traceback(self._dump, all_threads=True)
        self._dump.seek(0)
        dump = self._dump.read()
        others = {
            f"{t.name}": short_stack(dump, t.ident, depth=3)
            for t in threading.enumerate()
            if t.ident not in (None, self.gui_ident, self.ident)
        }
        return short_stack(dump, self.gui_ident), others

    def _close(self, stall: Stall) -> None:
        end = thread_cpu()
        stall.cpu_used = {k: ran - stall.cpu_start.get(k, (0.0, 0.0))[0] for k, (ran, _) in end.items()}
        stall.cpu_waited = {k: w - stall.cpu_start.get(k, (0.0, 0.0))[1] for k, (_, w) in end.items()}
        stall.steal_s = machine_steal_s() - stall.steal_start
        stall.length_ms = max(stall.length_ms, (self.last_tick - stall.started) * 1000)
        self._current = None

    def report(self, top: int = 12, worst: int = 5) -> str:
        """Markdown: where the GUI thread was over all late samples, and the worst stalls in detail."""
        if self._current is not None:
            self._close(self._current)
        samples = [s for stall in self.stalls for s in stall.stacks]
        pauses = ", ".join(f"gen {g} {ms:.0f} ms ({who})" for g, ms, who in self.gc_pauses) or "none"
        gc_line = f"Garbage-collector passes of 10 ms or more (they hold the interpreter lock): {pauses}"
        if not samples:
            return f"No heartbeat was late by more than {self.late_s * 1000:.0f} ms.\n\n{gc_line}"
        by_culprit = collections.Counter(culprit(s) for s in samples)
        lines = [
            gc_line,
            "",
            f"{len(self.stalls)} stalls over {self.late_s * 1000:.0f} ms, {len(samples)} samples "
            f"(one per {self.every_s * 1000:.0f} ms while late)",
            "",
            "| GUI thread in (innermost project frame) | samples | share |",
            "|---|---|---|",
        ]
        for name, n in by_culprit.most_common(top):
            lines.append(f"| `{name}` | {n} | {n / len(samples):.0%} |")
        cpu_total: collections.Counter[str] = collections.Counter()
        for stall in self.stalls:
            for name, used in stall.cpu_used.items():
                cpu_total[name.split("/")[0]] += used
        stall_s = sum(s.length_ms for s in self.stalls) / 1000
        lines += ["", f"CPU used by thread name during the stalls ({stall_s:.1f} s of stalls in all):", ""]
        lines += ["| thread | CPU s |", "|---|---|"]
        lines += [f"| {name} | {used:.2f} |" for name, used in cpu_total.most_common(8)]
        for stall in sorted(self.stalls, key=lambda s: -s.length_ms)[:worst]:
            lines += ["", f"Stall of {stall.length_ms:.0f} ms:"]
            for stack, n in collections.Counter(stall.stacks).most_common(3):
                lines.append(f"- {n} x " + " <- ".join(stack[:5]))
            busy = sorted(stall.cpu_used.items(), key=lambda kv: -kv[1])[:4]
            lines.append("- CPU meanwhile: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in busy if v > 0))
            waited = sorted(stall.cpu_waited.items(), key=lambda kv: -kv[1])[:4]
            lines.append(
                "- runnable but without a core: "
                + (", ".join(f"{k} {v * 1000:.0f} ms" for k, v in waited if v >= 0.001) or "none")
                + f"; the hypervisor's steal: {stall.steal_s * 1000:.0f} ms"
            )
            for name, stack in stall.others.items():
                if stack != ("(no Python frame)",):
                    lines.append(f"- thread {name} at the first sample: " + " <- ".join(stack))
        return "\n".join(lines)
