"""Read the two training-recipe formats used before the one schema (docs/adr/0011).

Both still appear in old checkpoints' provenance and in people's files: the supervised pre-training config
(``PretrainConfig``: a ``"model"`` object, ``"datasets"`` as ``"path:subdir"`` strings relative to the working
folder) and the meta-training recipe of ``core/lab/recipe.py`` (``"backbone"`` as a name with
``"backbone_options"``). :func:`migrate` turns either into the :class:`~core.training.recipe.TrainingRecipe`
form with the same meaning; a current recipe passes through unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_PRETRAIN_DEFAULTS: dict[str, Any] = {
    "model": {"name": "surface", "in_channels": 1}, "image_size": 64, "render_size": 128,
    "held_out": ["copper_disc"], "per_class": 120, "datasets": [], "epochs": 8, "batch_size": 64,
    "lr": 2e-3, "weight_decay": 0.0, "seed": 0, "threads": 1,
}  # fmt: skip

_RECIPE_DEFAULTS: dict[str, Any] = {
    "backbone_options": {}, "learner": "protonet", "learner_options": {}, "image_size": 64, "channels": 3,
    "data": [], "datasets_dir": "../shared/datasets", "synthetic_variants": [], "synthetic_per_class": 60,
    "eval_variant": None, "eval_data": None, "pretrain_iterations": 0, "pretrain_batch": 32,
    "iterations": 1000, "meta_batch": 2, "max_ways": 6, "ways": None, "shots": [1, 5], "queries": 8,
    "lr": 1e-3, "augment": True, "freeze_texture": False, "seed": 0,
}  # fmt: skip


def _strict(raw: dict[str, Any], defaults: dict[str, Any], kind: str) -> dict[str, Any]:
    unknown = sorted(set(raw) - set(defaults) - {"comment", "backbone"})
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in a {kind}; known: {sorted(defaults)}")
    return {**defaults, **raw}


def _from_pretrain_config(raw: dict[str, Any]) -> dict[str, Any]:
    c = _strict(raw, _PRETRAIN_DEFAULTS, "pre-training config (old format)")
    data = []
    for spec in c["datasets"]:
        path, _, subdir = str(spec).partition(":")
        data.append({"path": str(Path(path).resolve()), "subdir": subdir or None})
    return {
        "comment": c.get("comment", ""),
        "backbone": {k: v for k, v in c["model"].items() if k != "n_way"},
        "learner": {"name": "protonet", "n_way": 6},
        "image_size": c["image_size"],
        "channels": int(c["model"].get("in_channels", 1)),
        "data": data,
        "synthetic": {"held_out": list(c["held_out"]), "per_class": c["per_class"], "render_size": c["render_size"]},
        "supervised": {"epochs": c["epochs"], "batch_size": c["batch_size"], "lr": c["lr"],
                       "weight_decay": c["weight_decay"], "lr_floor": 0.05, "head": "model"},
        "augment": "geometric",
        "seed": c["seed"],
        "threads": c["threads"],
    }  # fmt: skip


def _from_lab_recipe(raw: dict[str, Any]) -> dict[str, Any]:
    c = _strict(raw, _RECIPE_DEFAULTS, "meta-training recipe (old format)")
    out: dict[str, Any] = {
        "comment": c.get("comment", ""),
        "backbone": {"name": c["backbone"], **c["backbone_options"]},
        "learner": {"name": c["learner"], **c["learner_options"]},
        "image_size": c["image_size"],
        "channels": c["channels"],
        "datasets_dir": c["datasets_dir"],
        "data": list(c["data"]),
        "eval_data": [c["eval_data"]] if c["eval_data"] else [],
        "synthetic": {
            "variants": list(c["synthetic_variants"]),
            "held_out": [c["eval_variant"]] if c["eval_variant"] else [],
            "per_class": c["synthetic_per_class"],
        },
        "episodic": {"steps": c["iterations"], "meta_batch": c["meta_batch"], "ways": c["ways"],
                     "max_ways": c["max_ways"], "shots": list(c["shots"]), "queries": c["queries"],
                     "lr": c["lr"], "lr_floor": 0.0, "report_every": 50},
        "augment": "surface" if c["augment"] else None,
        "freeze": ["features.texture"] if c["freeze_texture"] else [],
        "validate_every": 50,
        "seed": c["seed"],
    }  # fmt: skip
    if c["pretrain_iterations"]:
        out["supervised"] = {"steps": c["pretrain_iterations"], "batch_size": c["pretrain_batch"], "lr": c["lr"],
                             "lr_floor": 1.0, "head": "linear", "report_every": 100}  # fmt: skip
    return out


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A recipe object in the current form (old formats converted; see the module description)."""
    if "model" in raw and "backbone" not in raw:
        return _from_pretrain_config(raw)
    if isinstance(raw.get("backbone"), str):
        return _from_lab_recipe(raw)
    return raw
