from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Generator
from pathlib import Path

import pytest
import torch

from core.runtime import MALLOC_ARENAS, default_cpu_threads, resolve_device, set_cpu_threads


def test_auto_device_is_cpu_without_cuda_and_cuda_request_is_refused_clearly() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")


def test_unknown_device_lists_choices() -> None:
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("tpu")


def test_thread_default_leaves_cores_for_capture_and_gui(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("METAINSPECT_THREADS", raising=False)
        assert set_cpu_threads() == default_cpu_threads() == max(1, (os.cpu_count() or 2) // 2)
        monkeypatch.setenv("METAINSPECT_THREADS", "1")
        assert set_cpu_threads() == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


_RSS_PROBE = """
import sys, torch
from core.runtime import keep_freed_memory, release_freed_memory
applied = keep_freed_memory() if sys.argv[1] in ("keep", "release") else False
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
x = torch.ones(50 * 2**20)  # 200 MB, touched
peak = rss_mb()
del x
if sys.argv[1] == "release":
    applied = release_freed_memory()
print(applied, peak, rss_mb())
"""


def _rss_after_free(mode: str, env: dict[str, str]) -> tuple[bool, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
    ).stdout.split()
    return out[0] == "True", float(out[1]), float(out[2])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_keep_freed_memory_keeps_large_blocks_for_reuse_and_can_be_turned_off() -> None:
    env = {k: v for k, v in os.environ.items() if k != "METAINSPECT_KEEP_FREED_MEMORY"}
    applied, peak, after = _rss_after_free("keep", env)
    assert applied
    assert after > peak - 20  # the 200 MB block stays mapped for the next batch (no page faults)
    applied, peak, after = _rss_after_free("default", env)
    assert not applied
    assert after < peak - 150  # glibc's default unmaps it
    applied, peak, after = _rss_after_free("keep", {**env, "METAINSPECT_KEEP_FREED_MEMORY": "0"})
    assert not applied
    assert after < peak - 150


_ARENA_PROBE = """
import ctypes, sys, tempfile, threading
from core.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
start, hold = threading.Barrier(8), threading.Barrier(9)
def work():
    start.wait()
    blocks = [bytearray(200_000) for _ in range(20)]  # from the thread's own arena (not Python's small pools)
    hold.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
hold.wait()
with tempfile.NamedTemporaryFile(suffix=".xml") as tmp:
    fh = libc.fopen(tmp.name.encode(), b"w")
    libc.malloc_info(0, fh)
    libc.fclose(fh)
    print(open(tmp.name).read().count("<heap nr="))
for t in threads:
    t.join()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc arenas")
def test_keep_freed_memory_lets_threads_share_a_few_heaps() -> None:
    """Eight threads allocating at once get a heap each by default; the app's setting caps them (the window's
    worker threads each kept their own freed memory)."""
    env = {k: v for k, v in os.environ.items() if k != "METAINSPECT_KEEP_FREED_MEMORY"}

    def heaps(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _ARENA_PROBE, mode], capture_output=True, text=True, check=True,
            cwd=Path(__file__).resolve().parents[2], env=env,
        )  # fmt: skip
        return int(out.stdout.split()[-1])

    assert heaps("keep") <= MALLOC_ARENAS
    assert heaps("default") > MALLOC_ARENAS


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim")
def test_release_freed_memory_hands_kept_memory_back_between_runs() -> None:
    env = {k: v for k, v in os.environ.items() if k != "METAINSPECT_KEEP_FREED_MEMORY"}
    released, peak, after = _rss_after_free("release", env)
    assert released
    assert after < peak - 150  # kept for reuse while working, given back once the work is done


def test_loading_and_adapting_the_shipped_model_never_imports_torch_dynamo() -> None:
    """torch._dynamo costs 2.5 s of CPU holding the interpreter lock when something first imports it (an
    optimizer, or torch.stack under the meta device the checkpoint loader builds models on). Nothing the app
    does in-process may pull it in: not at start-up, not beside the live line at the first Adapt."""
    probe = """
import sys
import numpy as np
from core.camera.synthetic import DEFECT_CLASSES, render_part
from core.inference.anomaly import AnomalyScorer, find_trunk
from core.storage.checkpoint import load_checkpoint
from core.training.adapt import run_adaptation
ck = load_checkpoint("default")
loaded = "torch._dynamo" in sys.modules
rng = np.random.default_rng(0)
pairs = [(render_part(rng, n, size=96)[0], n) for n in DEFECT_CLASSES[:2] for _ in range(2)]
adapted = run_adaptation(ck, pairs)
adapted.learner.leave_one_out(adapted.support_x, adapted.support_y, steps=adapted.steps)
AnomalyScorer.fit([p[0] for p in pairs], find_trunk(ck.learner.model))
print(loaded, "torch._dynamo" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.split()  # fmt: skip
    assert out == ["False", "False"]


def test_a_generator_in_its_own_thread_passes_on_yields_return_and_errors_at_lower_priority() -> None:
    """What the app's Adapt runs on: the work's thread is niced (Linux), the caller's keeps its priority."""
    from core.runtime import BACKGROUND_NICENESS, generator_in_thread

    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def work() -> Generator[tuple[str, int], None, str]:
        yield threading.current_thread().name, niceness()
        yield "second", 2
        return "done"

    before = niceness()
    gen = generator_in_thread(work, name="test-background")
    first = next(gen)
    assert first[0] == "test-background"
    if sys.platform.startswith("linux"):
        assert first[1] == min(19, before + BACKGROUND_NICENESS)
    assert next(gen) == ("second", 2)
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "done"
    assert niceness() == before

    def failing() -> Generator[int, None, None]:
        yield 1
        raise ValueError("broken input")

    gen2 = generator_in_thread(failing, name="test-background")
    assert next(gen2) == 1
    with pytest.raises(ValueError, match="broken input"):
        next(gen2)
