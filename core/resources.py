"""Where the shipped resources (default config, models, icons) live: source checkout or frozen bundle."""

from __future__ import annotations

import sys
from pathlib import Path


def resources_dir() -> Path:
    """The ``resources/`` folder: beside the packages in a checkout, under ``sys._MEIPASS`` in a PyInstaller build."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def resource_path(*parts: str) -> Path:
    """Path of one shipped resource, e.g. ``resource_path("models", "default.pt")`` (existence not checked)."""
    return resources_dir().joinpath(*parts)
