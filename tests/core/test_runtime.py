from __future__ import annotations

import os

import pytest
import torch

from core.runtime import default_cpu_threads, resolve_device, set_cpu_threads


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
