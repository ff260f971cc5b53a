"""Experiment helpers shared by the leave-one-out benchmarks (never used by the app or the tests).

Training recipes themselves live in :mod:`core.training.recipe` and run with
``metainspect-lab pretrain RECIPE.json --out X.pt`` (held-out scores printed as it goes); this module only adds
what the benchmarks need on top: a test set as 8-bit class tensors, and training for a CPU-time budget.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from core.data import ImageFolderDataset
from core.imaging.preprocess import Preprocess
from core.training.recipe import TrainingRecipe
from core.training.recipe_run import build_recipe_learner, iter_recipe, save_trained


def folder_classes(path: Path, preprocess: Preprocess, subdir: str | None = None) -> dict[str, torch.Tensor]:
    """Image-folder tree/zip -> ``{"<set>/<class>": uint8 (n, C, S, S)}``: resized as ``preprocess`` says but
    not normalised (values 0..255), so any model's normalisation can be applied afterwards."""
    c = preprocess.channels
    raw = Preprocess(preprocess.image_size, c, (0.0,) * c, (1.0,) * c)
    ds = ImageFolderDataset.from_path(path, raw, subdir=subdir)
    stem = Path(path).name.removesuffix(".zip")
    return {
        f"{stem}/{name}": (x * 255.0).round().clamp(0, 255).to(torch.uint8)
        for name, x in zip(ds.class_names, ds.images, strict=True)
    }


def train_for_budget(
    recipe: TrainingRecipe, pool: ImageFolderDataset, budget: float, out: Path, bench: str
) -> dict[str, Any]:
    """Run ``recipe`` on ``pool`` until ``budget`` seconds of this process's CPU time are spent (or the recipe
    ends); save the checkpoint with the steps actually done; return what happened."""
    learner = build_recipe_learner(recipe)
    last = None
    cpu0 = time.process_time()
    for rec in iter_recipe(recipe, learner, pool):
        last = rec
        if time.process_time() - cpu0 >= budget:
            break
    assert last is not None
    done = recipe.replace_steps(iterations=last.iteration) if recipe.episodic is not None else recipe
    save_trained(
        out, learner, done, pool,
        extra={"iterations": last.iteration, "seconds": round(last.elapsed, 1), "bench": bench},
    )  # fmt: skip
    return {
        "iterations": last.iteration,
        "seconds": last.elapsed,
        "cpu_seconds": time.process_time() - cpu0,
        "train_loss": last.meta_loss,
    }
