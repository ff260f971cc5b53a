"""Model registry: ``register_model`` / ``create_model`` / ``list_models`` (timm-style, explicit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[F], F]:
    """Class or function decorator registering a model factory under ``name``.

    The factory is called as ``factory(in_channels=..., n_way=..., image_size=..., width=..., **kw)`` and must
    return an ``nn.Module`` with ``features``, ``head``, ``embedding_dim`` and ``config()``.

    Raises
    ------
    ValueError
        If ``name`` is already taken by a different factory.
    """
    key = name.strip().lower()

    def decorator(factory: F) -> F:
        existing = _MODELS.get(key)
        if existing is not None and existing is not factory:
            raise ValueError(f"model name {key!r} is already registered (by {existing!r})")
        _MODELS[key] = factory
        return factory

    return decorator


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_MODELS)


def create_model(
    name: str = "conv4",
    *,
    in_channels: int = 1,
    n_way: int = 5,
    image_size: int = 28,
    width: int = 64,
    **kw: Any,
) -> nn.Module:
    """Build a registered few-shot backbone + linear head.

    Parameters
    ----------
    name
        A name from :func:`list_models` (case-insensitive).
    in_channels, n_way, image_size, width
        Input channels (1 grey, 3 RGB), head outputs, square input side in pixels, base channel width.
    **kw
        Model-specific options (e.g. ``norm="batch"|"group"|"none"``).

    Returns
    -------
    nn.Module
        ``forward(x: (B, C, S, S)) -> (B, n_way)`` logits, equal to ``head(features(x))``.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known names) or invalid options.
    """
    key = str(name).strip().lower()
    factory = _MODELS.get(key)
    if factory is None:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return factory(in_channels=in_channels, n_way=n_way, image_size=image_size, width=width, **kw)
