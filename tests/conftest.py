"""Test-wide settings: headless Qt, isolated user settings, and the shared public data sets."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch
from hypothesis import settings

from core.runtime import keep_freed_memory

T = TypeVar("T")

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# One torch thread: tests use tiny models, and several run real subprocesses (torchrun ranks, a crash writer)
# beside the test process, where competing OpenMP threads made runs up to 15x slower (docs/benchmarks.md).
os.environ.setdefault("METAINSPECT_THREADS", "1")
torch.set_num_threads(1)
# As the app and metainspect-lab do: reuse freed tensor memory instead of page-faulting it in again.
keep_freed_memory()

# Property-based fuzz tests (tests/fuzzing.py): the same examples on every run, nothing saved in the repository,
# no per-example deadline on a shared machine. Each test sets its own (modest) max_examples.
settings.register_profile("metainspect", derandomize=True, database=None, deadline=None, print_blob=True)
settings.load_profile("metainspect")

REPO_ROOT = Path(__file__).resolve().parents[1]


def _datasets_dir() -> Path:
    env = os.environ.get("METAINSPECT_DATASETS")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """Folder of the shared public data-set zips (``../shared/datasets``); skips when absent."""
    path = _datasets_dir()
    if not (path / "omniglot28.zip").is_file():
        pytest.skip(f"shared data sets not found at {path} (set METAINSPECT_DATASETS)")
    return path


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the real user's config, data and QSettings."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))


def write_tiny_checkpoint(path: Path, algorithm: str = "protonet", n_way: int = 5) -> Path:
    """A small, untrained Conv-4 checkpoint (32 px RGB) of ``algorithm``, written with the real save_checkpoint."""
    from core.imaging import Preprocess
    from core.meta import create_learner
    from core.models import create_model
    from core.storage.checkpoint import save_checkpoint

    model = create_model("conv4", in_channels=3, n_way=n_way, image_size=32, width=16)
    save_checkpoint(
        path,
        create_learner(algorithm, model, n_way=n_way),
        preprocess=Preprocess(32, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        class_names=[],
        provenance={"purpose": "test"},
    )
    return path


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small, untrained ProtoNet checkpoint (adapts in milliseconds)."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "base.pt")


def finish_generator(gen: Generator[Any, None, T | None]) -> T:
    """Drive a progress generator (teaching, adaptation) to its end and return its result, which must exist."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            assert stop.value is not None
            return stop.value
