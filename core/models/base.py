"""Common base of the few-shot backbones: a ``features`` extractor, a linear ``head``, input checks."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

NORMS = ("batch", "group", "none")


def make_norm(kind: str, channels: int) -> nn.Module:
    """A normalisation layer for ``channels`` feature maps.

    ``"batch"`` (the models' default) is BatchNorm with per-batch (per-task) statistics only:
    ``track_running_stats=False``, so train and eval behave alike and no running buffers leak between
    tasks, but a prediction depends on the other images in its batch. ``"group"`` is GroupNorm: statistics
    per image, so a part classified alone gets the same verdict as in a batch. ``"none"`` is the identity.
    See docs/adr/0001.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels, track_running_stats=False)
    if kind == "group":
        # at least 8 channels per group: one channel per group is instance norm, which wipes out the
        # few-pixel maps of the last blocks (Conv-4's fourth conv sees 3x3 at 28 px)
        groups = max(1, min(8, channels // 8))
        while channels % groups:
            groups -= 1
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


def check_sizes(name: str, in_channels: int, n_way: int, image_size: int, width: int) -> None:
    """Validate the common constructor arguments of the four-pooling backbones (clear errors before building)."""
    if in_channels < 1 or width < 1 or n_way < 1:
        raise ValueError(
            f"in_channels, width and n_way must be positive, got {in_channels}, {width}, {n_way}"
        )
    if image_size < 16:
        raise ValueError(f"{name} needs image_size >= 16 (four 2x poolings), got {image_size}")


class FewShotModel(nn.Module):
    """Backbone + linear head; ``forward(x) == head(features(x))``.

    Attributes
    ----------
    features
        ``(B, C, H, W) -> (B, D)`` embedding.
    head
        ``nn.Linear(D, n_way)``.
    embedding_dim
        ``D``.
    in_channels, image_size
        Expected input channels and square side (``image_size`` is None when any size works).
    """

    features: nn.Module
    head: nn.Linear
    embedding_dim: int
    in_channels: int
    image_size: int | None
    name: str = ""
    batch_independent: bool = False
    """True when an image's embedding never depends on the other images in its batch (no per-batch norm
    statistics): evaluation may then embed each image once for all episodes."""

    def __init__(self) -> None:
        super().__init__()
        self._options: dict[str, Any] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_way)`` for images ``x`` ``(B, C, H, W)``."""
        return self.head(self.features(x))

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is a ``(B, C, H, W)`` batch this model accepts."""
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"images must be a torch.Tensor (B, C, H, W), got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"images must have shape (B, C, H, W), got {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.name} expects {self.in_channels}-channel images, got {x.shape[1]} channels "
                f"(shape {tuple(x.shape)}); check the preprocessing (grey=1, RGB=3)"
            )
        if self.image_size is not None and tuple(x.shape[2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"{self.name} expects {self.image_size}x{self.image_size} images, got "
                f"{x.shape[2]}x{x.shape[3]}; resize with the model's preprocessing"
            )

    @property
    def n_way(self) -> int:
        """Number of head outputs."""
        return int(self.head.out_features)

    def config(self) -> dict[str, Any]:
        """JSON-able arguments that rebuild this model with ``create_model(**config)``."""
        return {"name": self.name, **self._options, "n_way": self.n_way}
