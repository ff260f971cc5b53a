"""Fixtures for the workspace tests: a fresh workspace per test and small real images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.storage import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    """An open workspace with classes "ok" and "scratch" (a defect), closed after the test."""
    workspace = Workspace.open(tmp_path / "ws", user="tester")
    workspace.classes.add("ok", colour="#00ff00", shortcut="1")
    workspace.classes.add("scratch", colour="#ff0000", is_defect=True, shortcut="2")
    yield workspace
    workspace.close()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def part_image(rng: np.random.Generator, size: int = 24, grey: bool = False) -> np.ndarray:
    """A small random BGR (or grey) uint8 picture; random content makes every image hash distinct."""
    shape = (size, size) if grey else (size, size, 3)
    return rng.integers(0, 256, shape, dtype=np.uint8)
