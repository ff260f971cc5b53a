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


def set_cpu_threads(n: int | None = None) -> int:
    """Set torch's intra-op CPU threads (default: ``METAINSPECT_THREADS`` or all cores) and return the number."""
    if n is None:
        env = os.environ.get("METAINSPECT_THREADS")
        n = int(env) if env else (os.cpu_count() or 1)
    n = max(1, int(n))
    torch.set_num_threads(n)
    return n
