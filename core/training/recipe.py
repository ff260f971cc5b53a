"""The training recipe: one typed, validated record of everything that decides a trained backbone.

A recipe pools classes from image-folder sets (trees or zips, optionally a sub-folder) and the synthetic
line's product variants (some held out), names the backbone and the learner, and the stages that train
them: a supervised stage (cross-entropy over the pooled labels) and/or an episodic stage (the learner's
``meta_loss`` on class-balanced, within-source episodes), with one augmentation and one seed. It is read
from JSON (unknown keys are an error); :mod:`core.training.recipe_run` runs it on the one engine.

    {"backbone": {"name": "surface", "in_channels": 1}, "learner": {"name": "protonet", "n_way": 6},
     "image_size": 64, "channels": 1, "synthetic": {"held_out": ["copper_disc"], "per_class": 120},
     "supervised": {"epochs": 16, "batch_size": 64, "lr": 0.002, "lr_floor": 0.05}, "augment": "geometric"}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from core.imaging.augment import TensorAugment
from core.imaging.preprocess import Preprocess

#: Relative ``datasets_dir`` values are taken from the repository root (the lab's checkout).
REPO_ROOT = Path(__file__).resolve().parents[2]

_T = TypeVar("_T")


def _record(cls: type[_T], data: Any, where: str) -> _T:
    """``cls(**data)`` with a clear error for a non-object or an unknown key."""
    if not isinstance(data, dict):
        raise ValueError(f"the recipe's {where} must be a JSON object, got {data!r}")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in the recipe's {where}; known: {sorted(known)}")
    return cls(**data)


def _positive(where: str, **values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"the recipe's {where}.{name} must be positive, got {value}")


@dataclass(frozen=True)
class DataSource:
    """An image-folder tree or zip (``path``, relative to the recipe's ``datasets_dir``), optionally only the
    classes below ``subdir``; every class folder is a class ``"<set>/<class>"``."""

    path: str
    subdir: str | None = None

    @property
    def name(self) -> str:
        return Path(self.path).name.removesuffix(".zip")


@dataclass(frozen=True)
class SyntheticSource:
    """Synthetic-line crops: the defect classes of each product variant, ``"synthetic/<variant>/<defect>"``.

    ``variants`` trained on (``None``: every variant not in ``held_out``); ``held_out`` variants are never
    trained on and are scored by validation (``eval_per_class`` crops per class, another seed);
    ``per_class`` crops per (variant, defect), rendered at ``render_size`` and resized, as the app's trigger
    does.
    """

    variants: tuple[str, ...] | None = None
    held_out: tuple[str, ...] = ()
    per_class: int = 60
    eval_per_class: int = 30
    render_size: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "held_out", tuple(self.held_out))
        if self.variants is not None:
            object.__setattr__(self, "variants", tuple(self.variants))
        _positive("synthetic", per_class=self.per_class, eval_per_class=self.eval_per_class,
                  render_size=self.render_size)  # fmt: skip
        overlap = set(self.variants or ()) & set(self.held_out)
        if overlap:
            raise ValueError(f"synthetic variants {sorted(overlap)} are both trained on and held out")

    def training_variants(self) -> tuple[str, ...]:
        """The variants rendered for training (validated against the synthetic line's list)."""
        from core.camera.synthetic import list_variants

        known = list_variants()
        unknown = sorted((set(self.variants or ()) | set(self.held_out)) - set(known))
        if unknown:
            raise ValueError(f"unknown synthetic variants {unknown}; choose from {known}")
        if self.variants is None:
            return tuple(v for v in known if v not in self.held_out)
        return self.variants


@dataclass(frozen=True)
class SupervisedStage:
    """Cross-entropy over the pooled labels (a synthetic defect is one label across variants).

    Exactly one of ``epochs`` (shuffled epochs, one record per epoch) and ``steps`` (label-balanced draws,
    a record every ``report_every`` steps). ``head``: ``"model"`` trains the backbone's own head sized to the
    labels; ``"linear"`` a throw-away linear layer on the features (the learner's head keeps its size; needed
    when an episodic stage follows). Adam with ``lr`` / ``weight_decay``, cosine decay to ``lr_floor`` times
    the rate (1.0: constant).
    """

    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.0
    lr_floor: float = 0.05
    head: str = "model"
    report_every: int = 100

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("the recipe's supervised stage needs exactly one of 'epochs' and 'steps'")
        _positive("supervised", batch_size=self.batch_size, lr=self.lr, report_every=self.report_every,
                  length=self.epochs or self.steps or 0)  # fmt: skip
        if self.head not in ("model", "linear"):
            raise ValueError(f"the recipe's supervised.head must be 'model' or 'linear', got {self.head!r}")
        if not 0.0 <= self.lr_floor <= 1.0:
            raise ValueError(f"supervised.lr_floor must be in [0, 1], got {self.lr_floor}")


@dataclass(frozen=True)
class EpisodicStage:
    """Episodes from :class:`~core.data.PooledEpisodeSampler`: ``meta_batch`` tasks per Adam step, ``ways``
    fixed (learners with a fixed-size head) or 2..``max_ways``, shots drawn from ``shots``, ``queries`` per
    class; within one source per episode unless ``within_source`` is false; cosine decay to ``lr_floor``
    times ``lr``; a record every ``report_every`` steps."""

    steps: int
    meta_batch: int = 2
    ways: int | None = None
    max_ways: int = 6
    shots: tuple[int, ...] = (1, 5)
    queries: int = 8
    lr: float = 1e-3
    lr_floor: float = 0.0
    within_source: bool = True
    report_every: int = 50

    def __post_init__(self) -> None:
        object.__setattr__(self, "shots", tuple(int(k) for k in self.shots))
        _positive("episodic", steps=self.steps, meta_batch=self.meta_batch, queries=self.queries, lr=self.lr,
                  report_every=self.report_every, shots=min(self.shots, default=0))  # fmt: skip
        if (self.ways is not None and self.ways < 2) or self.max_ways < 2:
            raise ValueError("the recipe's episodic ways / max_ways must be at least 2")
        if not 0.0 <= self.lr_floor <= 1.0:
            raise ValueError(f"episodic.lr_floor must be in [0, 1], got {self.lr_floor}")


@dataclass(frozen=True)
class TrainingRecipe:
    """Everything that decides a trained backbone (stored whole in its checkpoint's provenance).

    Attributes
    ----------
    backbone
        ``create_model`` keyword arguments, ``name`` first (``n_way`` is set by the stages).
    learner
        ``create_learner`` keyword arguments, ``name`` first; ``n_way`` defaults to the episodic ways (or
        ``max_ways``), else 5.
    image_size, channels
        Model input; images are prepared to [0, 1] (zero mean, unit std: the models standardise themselves).
    datasets_dir, data, eval_data
        Folder of the data sets (relative: from the repository root); sets trained on; sets only scored.
    synthetic
        Synthetic-line variants trained on / held out (no synthetic classes when ``None``).
    supervised, episodic
        The stages, run in this order (at least one).
    augment
        :class:`~core.imaging.augment.TensorAugment` (JSON: ``"surface"``, ``"geometric"``, ``"none"`` or an
        object of its fields).
    freeze
        Sub-modules of the model kept as initialised, e.g. ``"features.texture"`` (the classic texture
        histograms of ``texture_fused``).
    validate_every
        Score the held-out sets every this many steps of each stage (0: only at a stage's end; nothing when
        there are no held-out sets).
    seed, threads
        Seed of weights, rendering and sampling; CPU threads while training.
    comment
        Free text (why this recipe, how to run it).
    """

    backbone: dict[str, Any]
    learner: dict[str, Any] = field(default_factory=lambda: {"name": "protonet"})
    image_size: int = 64
    channels: int = 1
    datasets_dir: str = "../shared/datasets"
    data: tuple[DataSource, ...] = ()
    eval_data: tuple[DataSource, ...] = ()
    synthetic: SyntheticSource | None = None
    supervised: SupervisedStage | None = None
    episodic: EpisodicStage | None = None
    augment: TensorAugment | None = None
    freeze: tuple[str, ...] = ()
    validate_every: int = 0
    seed: int = 0
    threads: int = 1
    comment: str = ""

    def __post_init__(self) -> None:
        for part in ("backbone", "learner"):
            value = getattr(self, part)
            if not isinstance(value, dict) or not isinstance(value.get("name"), str):
                raise ValueError(f"the recipe's {part!r} must be an object with a 'name'")
        if self.supervised is None and self.episodic is None:
            raise ValueError("the recipe trains nothing: give a 'supervised' and/or an 'episodic' stage")
        if self.supervised is not None and self.supervised.head == "model" and self.episodic is not None:
            raise ValueError("an episodic stage after a supervised one needs supervised.head 'linear'")
        if not self.data and self.synthetic is None:
            raise ValueError("the recipe has no training data: give 'data' and/or 'synthetic'")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels}")
        _positive("top level", image_size=self.image_size, threads=self.threads)
        if self.validate_every < 0 or self.seed < 0:
            raise ValueError("validate_every and seed must be zero or more")
        object.__setattr__(self, "freeze", tuple(self.freeze))

    # ------------------------------------------------------------------ derived values
    def preprocess(self) -> Preprocess:
        """Grey or RGB in [0, 1] at ``image_size`` (the models standardise each image themselves)."""
        return Preprocess(self.image_size, self.channels, (0.0,) * self.channels, (1.0,) * self.channels)

    def learner_ways(self) -> int:
        """``n_way`` of the learner (and of the model's head unless the supervised head is the model's)."""
        if "n_way" in self.learner:
            return int(self.learner["n_way"])
        if self.episodic is not None:
            return self.episodic.ways or self.episodic.max_ways
        return 5

    def datasets_root(self) -> Path:
        root = Path(self.datasets_dir)
        return root if root.is_absolute() else (REPO_ROOT / root).resolve()

    def held_out_names(self) -> list[str]:
        """What the recipe keeps out of training: held-out variants and scored-only sets."""
        held = list(self.synthetic.held_out) if self.synthetic is not None else []
        return held + [d.path for d in self.eval_data]

    # ------------------------------------------------------------------ JSON
    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainingRecipe:
        """Build from a JSON object; unknown keys (at any level) are an error listing the known ones. The two
        earlier formats (:mod:`core.training.recipe_legacy`) are converted."""
        if not isinstance(raw, dict):
            raise ValueError(f"a training recipe must be a JSON object, got {type(raw).__name__}")
        from core.training.recipe_legacy import migrate

        data = dict(migrate(raw))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown recipe key(s) {unknown}; known: {sorted(known)}")
        for key in ("data", "eval_data"):
            if key in data:
                if not isinstance(data[key], list):
                    raise ValueError(f"the recipe's {key!r} must be a list of {{'path', 'subdir'}} objects")
                data[key] = tuple(_record(DataSource, d, key) for d in data[key])
        parts: dict[str, type] = {
            "synthetic": SyntheticSource, "supervised": SupervisedStage, "episodic": EpisodicStage,
        }  # fmt: skip
        for key, part in parts.items():
            if data.get(key) is not None:
                data[key] = _record(part, data[key], key)
        data["augment"] = TensorAugment.from_value(data.get("augment"))
        if "freeze" in data:
            data["freeze"] = tuple(data["freeze"])
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainingRecipe:
        """Read a recipe file (a clear error for a missing file or invalid JSON)."""
        p = Path(path)
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"recipe file not found: {p}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"recipe file {p} is not valid JSON: {exc}") from None
        return cls.from_dict(raw)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (what :meth:`from_dict` reads back)."""
        out = asdict(self)
        for key in ("data", "eval_data", "freeze"):
            out[key] = list(out[key])
        if self.episodic is not None:
            out["episodic"]["shots"] = list(self.episodic.shots)
        if self.synthetic is not None:
            for key in ("variants", "held_out"):
                value = out["synthetic"][key]
                out["synthetic"][key] = list(value) if value is not None else None
        return out

    def replace_steps(self, *, epochs: int | None = None, iterations: int | None = None) -> TrainingRecipe:
        """The same recipe with the supervised ``epochs`` and/or episodic ``steps`` overridden."""
        from dataclasses import replace

        out = self
        if epochs is not None:
            if self.supervised is None or self.supervised.epochs is None:
                raise ValueError("--epochs needs a recipe whose supervised stage counts epochs")
            out = replace(out, supervised=replace(self.supervised, epochs=epochs))
        if iterations is not None:
            if self.episodic is None:
                raise ValueError("--iterations needs a recipe with an episodic stage")
            out = replace(out, episodic=replace(self.episodic, steps=iterations))
        return out
