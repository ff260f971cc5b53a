"""Learner registry: ``register_learner`` / ``create_learner`` / ``list_learners``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from core.meta.base import MetaLearner

_LEARNERS: dict[str, type[MetaLearner]] = {}

L = TypeVar("L", bound=type[MetaLearner])


def register_learner(name: str) -> Callable[[L], L]:
    """Class decorator registering a :class:`MetaLearner` subclass under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is already taken by another class.
    """
    key = name.strip().lower()

    def decorator(cls: L) -> L:
        existing = _LEARNERS.get(key)
        if existing is not None and existing is not cls:
            raise ValueError(f"learner name {key!r} is already registered (by {existing.__qualname__})")
        _LEARNERS[key] = cls
        return cls

    return decorator


def list_learners() -> list[str]:
    """Names accepted by :func:`create_learner`, sorted."""
    return sorted(_LEARNERS)


def create_learner(name: str, model: nn.Module, n_way: int = 5, **hyper: Any) -> MetaLearner:
    """Build the learner ``name`` around ``model``.

    Parameters
    ----------
    name
        A name from :func:`list_learners` (case-insensitive).
    model
        ``nn.Module`` with ``features`` and ``head``.
    n_way
        Classes per training task.
    **hyper
        Learner hyper-parameters (e.g. ``inner_lr``, ``inner_steps``, ``first_order``).

    Raises
    ------
    ValueError
        Unknown name (the message lists the known names) or invalid hyper-parameters.
    """
    key = str(name).strip().lower()
    cls = _LEARNERS.get(key)
    if cls is None:
        raise ValueError(f"unknown learner {name!r}; known learners: {', '.join(list_learners())}")
    try:
        return cls(model, n_way=n_way, **hyper)
    except TypeError as exc:
        raise ValueError(f"bad hyper-parameters for learner {key!r}: {exc}") from exc
