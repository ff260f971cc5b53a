"""Compute device and thread settings shared by training, adaptation and inference."""

from __future__ import annotations

import ctypes
import os
import queue
import sys
import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

# torch is imported inside the functions that use it: `metainspect-lab --help` and the first frame need none
if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(setting: str = "auto") -> torch.device:
    """Turn a device setting into a ``torch.device``.

    Parameters
    ----------
    setting
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises
    ------
    ValueError
        For an unknown setting, or ``cuda`` asked for on a machine without a usable CUDA device.
    """
    import torch

    name = setting.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {setting!r} was asked for, but no CUDA device is available; use 'cpu' or 'auto'"
            )
        index = name.partition(":")[2]
        count = torch.cuda.device_count()
        if name != "cuda" and not (index.isascii() and index.isdigit() and int(index) < count):
            # checked here: torch.device("cuda:x") raises RuntimeError, and "cuda:7" fails only when first used
            raise ValueError(
                f"device {setting!r} is not a CUDA device of this PC (cuda:0 to cuda:{count - 1})"
            )
        return torch.device(name)
    raise ValueError(f"unknown device {setting!r}; choose one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def default_cpu_threads() -> int:
    """Half the cores, at least one: capture, the GUI and a second torch worker need the rest.

    Measured on a 2-core PC (docs/benchmarks.md): 100 single-part verdicts took 0.34 s with 1 torch thread but
    21 s with 2 while another process kept one core busy, because OpenMP threads spin-wait on each other.
    """
    return max(1, (os.cpu_count() or 2) // 2)


def set_cpu_threads(n: int | None = None) -> int:
    """Set torch's intra-op CPU threads and return the number.

    ``n`` defaults to ``METAINSPECT_THREADS`` when set, else :func:`default_cpu_threads`.
    """
    if n is None:
        env = os.environ.get("METAINSPECT_THREADS")
        n = int(env) if env else default_cpu_threads()
    n = max(1, int(n))
    import torch

    torch.set_num_threads(n)
    return n


_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
KEEP_FREED_BYTES = 1 << 30
#: glibc malloc arenas (heaps) the process may have: by default up to 8 per core, one per thread that
#: allocates, each keeping its own freed memory. The app starts a thread per adaptation, per check and per
#: labelled part; with 2 arenas the window's memory over 20 adaptations stayed ~100 MB lower and flat
#: (docs/benchmarks.md, "Workstation window: heads fitted on the dimensions the task uses, two malloc
#: arenas").
MALLOC_ARENAS = 2


def keep_freed_memory(keep_bytes: int = KEEP_FREED_BYTES) -> bool:
    """Make glibc's malloc reuse freed tensor memory instead of handing it back to the OS; True when applied.

    By default glibc serves every allocation over 32 MB with a fresh ``mmap`` and unmaps it on free, so each
    large activation (a 5-way 5-shot batch at 84 px is 45 MB per Conv-4 layer) is page-faulted in again on
    every forward and backward pass. On the 2-core reference PC that made a memory copy ~8x slower than the
    memory allows; keeping the memory cut full-MAML adaptation from 3.05 to 2.25 s and head-only adaptation
    from 0.56-0.83 to 0.27 s (docs/benchmarks.md, "Allocator re-run"). With
    ``M_MMAP_MAX = 0`` large blocks come from the heap, and ``M_TRIM_THRESHOLD = keep_bytes`` keeps up to that
    much freed memory for reuse (resident memory then stays near the peak of the work done, as with a caching
    allocator). Allocations still succeed beyond it: glibc falls back to ``mmap`` when the heap cannot grow.
    ``M_ARENA_MAX = MALLOC_ARENAS`` (:data:`MALLOC_ARENAS`): threads share a few heaps, so memory one thread
    freed serves the next thread's work instead of staying in a heap of its own (call this early, before
    worker threads allocate).

    Linux/glibc only; elsewhere (Windows, macOS, musl) nothing changes and False is returned. Set
    ``METAINSPECT_KEEP_FREED_MEMORY=0`` to turn it off.
    """
    if os.environ.get("METAINSPECT_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    keep = max(0, min(int(keep_bytes), 2**31 - 1))
    return (
        bool(mallopt(_M_MMAP_MAX, 0))
        and bool(mallopt(_M_TRIM_THRESHOLD, keep))
        and bool(mallopt(_M_ARENA_MAX, MALLOC_ARENAS))
    )


Y = TypeVar("Y")
R = TypeVar("R")

#: Niceness of background work the inspector does not watch (adaptation and its check): the kernel then gives
#: the cores to the GUI and the live line first, whenever they want one.
BACKGROUND_NICENESS = 10


def lower_thread_priority(niceness: int = BACKGROUND_NICENESS) -> bool:
    """Lower the calling thread's scheduling priority by ``niceness`` (threads it starts later inherit it);
    True when done. For a thread of its own that ends with its work (:func:`generator_in_thread`): an ordinary
    user cannot raise a priority back (``RLIMIT_NICE`` is 0 by default), so a pooled thread would stay slow.
    Linux only, where each thread has its own niceness; elsewhere it does nothing."""
    if not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + max(0, niceness)))
    except OSError:
        return False
    return True


def generator_in_thread(
    make: Callable[[], Generator[Y, None, R]], *, name: str, niceness: int = BACKGROUND_NICENESS
) -> Generator[Y, None, R]:
    """Drive the generator ``make()`` on a new thread at lower priority (:func:`lower_thread_priority`) and
    pass on what it yields, returns and raises, so the caller's thread (a pooled worker) keeps its priority.

    Measured on the 2-core reference PC: while an adaptation ran beside the line, the GUI thread waited up to
    ~20 ms for a core within its longest stalls (docs/benchmarks.md). Closing this generator early leaves the
    inner one running to its end; stop it by its own cancel token.
    """
    items: queue.Queue[tuple[str, Any]] = queue.Queue()

    def run() -> None:
        lower_thread_priority(niceness)
        try:
            gen = make()
            while True:
                try:
                    items.put(("yield", next(gen)))
                except StopIteration as stop:
                    items.put(("return", stop.value))
                    return
        except BaseException as exc:  # handed to the caller's thread
            items.put(("raise", exc))

    threading.Thread(target=run, name=name, daemon=True).start()
    while True:
        kind, value = items.get()
        if kind == "yield":
            yield value
        elif kind == "return":
            return value
        else:
            raise value


def release_freed_memory() -> bool:
    """Give the freed heap pages kept by :func:`keep_freed_memory` back to the OS (glibc ``malloc_trim(0)``);
    True when some were released.

    Call it between pieces of work (the app does once after each adaptation, when its views have drawn the
    outcome). While work runs, kept memory saves page faults; between runs it is resident for nothing, and where
    a long-lived block lands above a freed one the heap cannot shrink, so resident memory climbed by ~50 MB
    steps over the first adaptations of a running window (docs/benchmarks.md). ``malloc_trim`` also releases
    free pages in the middle of the heap, so resident memory falls back to what is in use; the next adaptation
    faults its pages in again (a few ms). Linux/glibc only; elsewhere it does nothing and returns False. ctypes
    releases the interpreter lock during the call.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))
