"""Shared pieces of the property-based (hypothesis) fuzz tests: damaged copies of good files, a peak-memory
bound, and a snapshot of a folder tree to prove that nothing outside the workspace was written.

Every fuzz test runs under the ``metainspect`` profile (tests/conftest.py): derandomized, so CI replays the
same examples; no example database, so a run writes nothing into the repository; no deadline, because the
machine is shared and timing is not what is tested.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

from hypothesis import strategies as st


@st.composite
def damaged(draw: st.DrawFn, good: bytes) -> bytes:
    """``good`` with bits flipped, cut short, garbage spliced in, or a run of bytes zeroed."""
    out = bytearray(good)
    kind = draw(st.sampled_from(["flip", "cut", "splice", "zero"]))
    if kind == "flip":
        for at, bit in draw(
            st.lists(st.tuples(st.integers(0, len(out) - 1), st.integers(0, 7)), min_size=1, max_size=8)
        ):
            out[at] ^= 1 << bit
    elif kind == "cut":
        del out[draw(st.integers(1, len(out) - 1)) :]
    elif kind == "splice":
        at = draw(st.integers(0, len(out)))
        out[at:at] = draw(st.binary(min_size=1, max_size=64))
    else:
        at, n = draw(st.integers(0, len(out) - 1)), draw(st.integers(1, 256))
        out[at : at + n] = bytes(len(out[at : at + n]))
    return bytes(out)


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


@contextlib.contextmanager
def peak_memory_growth() -> Iterator[list[float]]:
    """Yields a list that receives, on exit, how far resident memory peaked above its level at entry (MB).

    Linux: the peak (VmHWM) is reset through ``/proc/self/clear_refs`` first; elsewhere nothing is measured
    and the list stays empty.
    """
    result: list[float] = []
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        yield result
        return
    start = _status_mb("VmRSS")
    yield result
    peak = _status_mb("VmHWM")
    if start is not None and peak is not None:
        result.append(peak - start)


def tree_state(root: Path, *, skip: Path | None = None) -> dict[str, tuple[int, str]]:
    """Every file and folder under ``root`` (except ``skip`` and what lies in it): size and content hash."""
    state: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        if path.is_file():
            data = path.read_bytes()
            state[str(path.relative_to(root))] = (len(data), hashlib.sha256(data).hexdigest())
        else:
            state[str(path.relative_to(root))] = (-1, "dir")
    return state


def sentinel_tree(root: Path) -> Path:
    """A small folder tree with files in it (where an escaping ``../`` or absolute name would land)."""
    for sub in ("a", "a/b", "models", "site-packages"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub / "keep.txt").write_text(f"sentinel {sub}\n")
    return root
