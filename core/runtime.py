"""Compute device and thread settings shared by training, adaptation and inference."""

from __future__ import annotations

import os

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
    torch.set_num_threads(n)
    return n
