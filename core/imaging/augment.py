"""Label-preserving augmentation for few-shot support sets, and per-image standardisation (numpy/OpenCV).

Surface defects keep their class under flips, right-angle turns and mild lighting changes, so a handful of
labelled parts can be stretched into a few times as many without inventing new looks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch


def augment(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    flips: bool = True,
    rot90: bool = True,
    brightness: float = 0.1,
    contrast: float = 0.1,
    noise: float = 0.0,
) -> np.ndarray:
    """One random variant of a uint8 image ``(H, W)`` or ``(H, W, C)``.

    Parameters
    ----------
    rng
        Source of randomness (same state, same result).
    flips, rot90
        Random horizontal/vertical flips and quarter turns (square images keep their shape).
    brightness, contrast
        Largest relative change of mean level and of contrast (0 disables).
    noise
        Standard deviation of added Gaussian noise in grey levels (0 disables).
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(
            f"augment needs a uint8 (H, W) or (H, W, C) image, got {getattr(image, 'shape', image)}"
        )
    if brightness < 0 or contrast < 0 or noise < 0:
        raise ValueError("brightness, contrast and noise must be >= 0")
    out = image
    if flips and rng.uniform() < 0.5:
        out = out[:, ::-1]
    if flips and rng.uniform() < 0.5:
        out = out[::-1]
    if rot90:
        out = np.rot90(out, int(rng.integers(4)))
    out = np.ascontiguousarray(out)
    gain = 1.0 + rng.uniform(-contrast, contrast) if contrast else 1.0
    shift = rng.uniform(-brightness, brightness) * 255.0 if brightness else 0.0
    if gain != 1.0 or shift != 0.0:
        mean = float(out.mean())
        out = cv2.convertScaleAbs(out, alpha=gain, beta=(1.0 - gain) * mean + shift)
    if noise:
        noisy = out.astype(np.float32) + rng.standard_normal(out.shape, dtype=np.float32) * noise
        out = np.clip(noisy, 0, 255).astype(np.uint8)
    return out


def augment_support(
    images: Sequence[np.ndarray],
    labels: Sequence[int],
    copies: int,
    rng: np.random.Generator,
    **kwargs: Any,
) -> tuple[list[np.ndarray], list[int]]:
    """The originals plus ``copies`` augmented variants of each, with their labels (originals first)."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if copies < 0:
        raise ValueError(f"copies must be >= 0, got {copies}")
    out_x = list(images)
    out_y = list(labels)
    for _ in range(copies):
        for img, lab in zip(images, labels, strict=True):
            out_x.append(augment(img, rng, **kwargs))
            out_y.append(lab)
    return out_x, out_y


def standardise(batch: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """Per-image zero mean, unit standard deviation: ``(B, C, H, W)`` or ``(C, H, W)`` float32.

    Removes each part's overall brightness and contrast, so a model sees surface structure rather than the
    material's colour: this helps transfer to a new product variant.
    """
    arr = np.asarray(batch, dtype=np.float32)
    if arr.ndim not in (3, 4):
        raise ValueError(f"expected (C, H, W) or (B, C, H, W), got shape {arr.shape}")
    axes = tuple(range(arr.ndim - 3, arr.ndim))
    mean = arr.mean(axis=axes, keepdims=True)
    std = arr.std(axis=axes, keepdims=True)
    return (arr - mean) / (std + eps)


#: Label-preserving views of prepared image batches ``(B, C, H, W)`` (the dihedral group of the square).
TENSOR_VIEWS = ("identity", "hflip", "vflip", "rot180", "transpose", "rot90", "rot270", "antitranspose")


def tensor_views(x: torch.Tensor, views: Sequence[str]) -> list[torch.Tensor]:
    """The batch ``x`` ``(B, C, H, W)`` under each named view (turns and transposes swap H and W).

    Raises
    ------
    ValueError
        For a name not in :data:`TENSOR_VIEWS`.
    """
    ops = {
        "identity": lambda t: t,
        "hflip": lambda t: t.flip(3),
        "vflip": lambda t: t.flip(2),
        "rot180": lambda t: t.flip(2).flip(3),
        "transpose": lambda t: t.transpose(2, 3),
        "rot90": lambda t: t.transpose(2, 3).flip(2),
        "rot270": lambda t: t.transpose(2, 3).flip(3),
        "antitranspose": lambda t: t.flip(2).flip(3).transpose(2, 3),
    }
    unknown = [v for v in views if v not in ops]
    if unknown:
        raise ValueError(f"unknown view(s) {unknown}; known: {', '.join(TENSOR_VIEWS)}")
    return [ops[v](x).contiguous() for v in views]
