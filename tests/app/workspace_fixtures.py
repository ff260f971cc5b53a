"""Real workspaces for the view tests: classes, labelled examples, model versions and a logged shift."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from core.station import Station, StationSettings
from core.storage import NewInspection, Workspace
from tests.core.station.conftest import part_images

SOURCE = "synthetic:seed=5,fps=30,speed=4,width=320,height=240,defect_rate=0.8"


def taught_workspace(root: Path, checkpoint: Path, versions: int = 2) -> None:
    """Six classes with two examples each and ``versions`` adapted model versions (each the parent of the next)."""
    station = Station(
        Workspace.open(root), StationSettings(source=SOURCE, checkpoint=str(checkpoint), device="cpu")
    )
    station.ensure_default_classes()
    for v in range(versions):
        for image, name in part_images(1, seed=v):
            station.label_image(image, name)
        for _ in station.adapt():
            pass
    station.close()


def log_shift(ws: Workspace, now: float | None = None) -> dict[str, int]:
    """Log a small shift: parts over the last 3 hours with images for the non-OK ones; returns verdict counts."""
    now = time.time() if now is None else now
    rng = np.random.default_rng(0)
    rows = [
        ("ok", "OK", now - 3 * 3600),  # outside "last hour"
        ("ok", "OK", now - 600),
        ("scratch", "REJECT", now - 500),
        ("dent", "REJECT", now - 400),
        ("ok", "CHECK", now - 300),
        ("spot", "CHECK", now - 200),
        ("ok", "OK", now - 100),
    ]
    model = ws.models.active()
    names = model.class_names if model else ("ok", "scratch", "spot", "crack", "dent", "chip")
    counts: dict[str, int] = {}
    for i, (predicted, verdict, t) in enumerate(rows):
        probs = np.full(len(names), 0.1 / (len(names) - 1))
        probs[names.index(predicted)] = 0.9 if verdict != "CHECK" else 0.5
        probs = probs / probs.sum()
        image = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8) if verdict != "OK" else None
        record = NewInspection(
            predicted, verdict, tuple(probs), time=t, part_id=100 + i, model_id=model.id if model else None
        )
        ws.inspections.append(record, image)
        counts[verdict] = counts.get(verdict, 0) + 1
    return counts
