"""What every thread of a process sleeps on, sampled from outside it (no interpreter lock needed): a diagnostic
for the GUI stalls `bench/bench_gui.py` reports.

Every ``--every-ms`` it reads each thread's state and kernel wait channel (``/proc/PID/task/*/stat`` and
``wchan``; the kernel stack of threads in uninterruptible sleep, ``D``) and keeps the last ``--keep-s`` seconds.
When the bench writes a stall to its ``--gaps-file`` (one line ``start_unix_s length_ms`` per heartbeat gap over
30 ms), the samples inside it are summarised: per thread, the states and wait channels seen. Needs read access
to the target's ``/proc`` (same user, or root for ``stack``).

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_gui.py --adaptations 20 --gaps-file /tmp/gaps.txt &
    .venv/bin/python bench/proc_sampler.py --pid $! --gaps-file /tmp/gaps.txt > /tmp/stall_waits.txt
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path


def sample(pid: int) -> list[tuple[str, str, str, str]]:
    """``(tid, name, state, wait)`` per thread; ``wait`` is the wait channel, or the kernel stack's top frames
    for a thread in ``D``."""
    out: list[tuple[str, str, str, str]] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # the process ended
        return out
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
            wchan = (task / "wchan").read_text().strip()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state = stat[stat.rindex(")") + 2]
        wait = wchan if wchan != "0" else ("running" if state == "R" else "-")
        if state == "D":
            try:
                frames = [
                    ln.split("] ", 1)[-1].split("+")[0] for ln in (task / "stack").read_text().splitlines()
                ]
                wait = " <- ".join(frames[:6])
            except OSError:
                pass
        out.append((task.name, name, state, wait))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--gaps-file", type=Path, required=True)
    ap.add_argument("--every-ms", type=float, default=3.0)
    ap.add_argument("--keep-s", type=float, default=10.0)
    args = ap.parse_args()
    history: collections.deque[tuple[float, list[tuple[str, str, str, str]]]] = collections.deque()
    seen_lines = 0
    while Path(f"/proc/{args.pid}").exists():
        now = time.time()
        history.append((now, sample(args.pid)))
        while history and history[0][0] < now - args.keep_s:
            history.popleft()
        lines = args.gaps_file.read_text().splitlines() if args.gaps_file.exists() else []
        for line in lines[seen_lines:]:
            start, length_ms = (float(v) for v in line.split())
            end = start + length_ms / 1000
            inside = [snap for t, snap in history if start <= t <= end]
            print(f"\nGUI gap of {length_ms:.0f} ms at {time.strftime('%H:%M:%S', time.gmtime(start))}, "
                  f"{len(inside)} samples")  # fmt: skip
            waits: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(
                collections.Counter
            )
            for snap in inside:
                for tid, name, state, wait in snap:
                    waits[(tid, name)][f"{state} {wait}"] += 1
            for (tid, name), counts in sorted(waits.items(), key=lambda kv: kv[0][0]):
                common = ", ".join(f"{what} x{n}" for what, n in counts.most_common(3))
                print(f"  {name}/{tid}: {common}")
        seen_lines = len(lines)
        time.sleep(max(0.0, args.every_ms / 1000 - (time.time() - now)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
