"""Typed, frozen configuration records for meta-training and evaluation.

Every default lives here once; the CLI, the GUI and the tests build these records rather than repeating
numbers. ``from_dict`` rejects unknown keys so a typo in a JSON config file is an error, not a silent default.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from core.runtime import DEVICE_CHOICES

#: A verdict is CHECK when the top class probability is below this (inspectors re-look at those parts).
DEFAULT_MIN_CONFIDENCE = 0.6
#: ... or when the top class leads the runner-up by less than this.
DEFAULT_MIN_MARGIN = 0.15
#: Inner steps of an adaptation when nobody chose otherwise: ``None``, the model's own (its learner's
#: ``inner_steps``; the shipped model's recipe says 50 with early stopping). The app's preference default and
#: ``metainspect-lab adapt``'s, so a model adapted in the lab is the model the app would have made and the one
#: the benchmarks measured.
DEFAULT_ADAPT_STEPS: int | None = None

_Record = TypeVar("_Record", "TrainConfig", "EvalConfig")


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def _non_negative(name: str, value: float) -> None:
    if value < 0:
        raise ValueError(f"{name} must be zero or more, got {value}")


def _check_device(device: str) -> None:
    name = device.strip().lower()
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one meta-training run.

    Parameters
    ----------
    algo, backbone
        Names from ``core.meta.list_learners()`` and ``core.models.list_models()``.
    ways, shots, queries
        N-way K-shot episodes with Q query images per class.
    meta_batch
        Tasks per outer (Adam) step.
    inner_steps, inner_lr
        Inner-loop SGD steps and rate for the gradient learners (ignored by ProtoNet).
    outer_lr
        Adam learning rate.
    iterations
        Total outer steps (a resumed run continues up to this number).
    val_every, val_episodes
        Validation accuracy every ``val_every`` iterations over ``val_episodes`` episodes (0 = never).
    checkpoint_every
        Periodic checkpoint every this many iterations (0 = only the final one).
    image_size, channels, width
        Model input side, 1 (grey) or 3 (RGB), and backbone width (filters per layer).
    rotations
        Omniglot-style augmentation: each 90/180/270 degree rotation of a class is a new class.
    first_order
        Passed to learners that accept it (``None`` = the learner's own default).
    seed, device
        Seed for sampling and initialisation; ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    """

    algo: str = "maml"
    backbone: str = "conv4"
    ways: int = 5
    shots: int = 1
    queries: int = 15
    meta_batch: int = 4
    inner_steps: int = 1
    inner_lr: float = 0.4
    outer_lr: float = 1e-3
    iterations: int = 1000
    val_every: int = 0
    val_episodes: int = 50
    checkpoint_every: int = 0
    image_size: int = 28
    channels: int = 1
    width: int = 64
    rotations: bool = False
    first_order: bool | None = None
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.ways < 2:
            raise ValueError(f"ways must be at least 2 (a task needs two classes), got {self.ways}")
        for name in ("shots", "queries", "meta_batch", "iterations", "image_size", "width"):
            _positive(name, getattr(self, name))
        for name in ("inner_steps", "val_every", "val_episodes", "checkpoint_every", "seed"):
            _non_negative(name, getattr(self, name))
        _positive("inner_lr", self.inner_lr)
        _positive("outer_lr", self.outer_lr)
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels}")
        _check_device(self.device)

    def learner_hyper(self) -> dict[str, Any]:
        """Keyword arguments for ``create_learner`` besides the model and ``n_way``."""
        hyper: dict[str, Any] = {"inner_lr": self.inner_lr, "inner_steps": self.inner_steps}
        if self.first_order is not None:
            hyper["first_order"] = self.first_order
        return hyper

    to_dict = asdict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from plain values (e.g. a JSON file); unknown keys are an error listing the known ones."""
        return _from_dict(cls, data)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        """Read a JSON object of fields (any subset; the rest keep their defaults)."""
        return cls.from_dict(_read_json(path))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class EvalConfig:
    """An evaluation protocol: N-way K-shot episodes, Q queries per class, mean accuracy with 95% CI.

    ``steps`` is the number of inner adaptation steps (``None`` = the learner's own default).
    """

    ways: int = 5
    shots: int = 1
    queries: int = 15
    episodes: int = 600
    seed: int = 0
    steps: int | None = None

    def __post_init__(self) -> None:
        if self.ways < 2:
            raise ValueError(f"ways must be at least 2, got {self.ways}")
        for name in ("shots", "queries", "episodes"):
            _positive(name, getattr(self, name))
        _non_negative("seed", self.seed)
        if self.steps is not None:
            _non_negative("steps", self.steps)

    to_dict = asdict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalConfig:
        """Build from plain values; unknown keys are an error listing the known ones."""
        return _from_dict(cls, data)


def _from_dict(cls: type[_Record], data: dict[str, Any]) -> _Record:
    if not isinstance(data, dict):
        raise ValueError(f"a {cls.__name__} needs a JSON object of fields, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; known fields: {sorted(known)}")
    return cls(**data)


def _read_json(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"config file not found: {p}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"config file {p} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold one JSON object of fields")
    return data
