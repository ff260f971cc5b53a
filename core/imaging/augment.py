"""Label-preserving augmentation: numpy/OpenCV for support images, tensors for training and fine-tuning.

Surface defects keep their class under flips, right-angle turns and mild lighting changes, so a handful of
labelled parts can be stretched into a few times as many without inventing new looks. This is the one
augmentation module: :func:`augment` / :func:`augment_support` work on uint8 images, :class:`TensorAugment`
on prepared training batches (episodes and supervised batches), :func:`tensor_views` gives the fixed views
that fine-tuning embeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F


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


@dataclass(frozen=True)
class TensorAugment:
    """Label-preserving training augmentation of a prepared batch ``(B, C, H, W)`` in [0, 1].

    Called as ``augment(x, rng)`` with the sampler's ``numpy`` Generator (so a saved sampler state resumes
    the augmentation too); it fits :data:`core.data.Augment`. The geometry (one quarter turn, one horizontal
    flip) is shared by the whole batch, so a class batch keeps one look; the photometric changes are drawn
    per image. Photometric changes assume images in [0, 1] (the training recipes' zero-mean, unit-std
    preprocessing): the result is clamped to [0, 1] and rounded to 1/255 steps, like an 8-bit sensor.

    Attributes
    ----------
    rot90, flip
        A random quarter turn (0-3; square images keep their shape) / a horizontal flip with probability 1/2.
    contrast
        Largest relative contrast change per image (0.25: x0.75 to x1.25 around the image mean).
    brightness
        Largest shift of the level per image, as a fraction of full scale (20/255 for the surface preset).
    blur
        Probability that the batch is blurred by a 3x3 binomial kernel.
    noise
        Largest standard deviation of added Gaussian noise, fraction of full scale (drawn once per batch).
    """

    rot90: bool = True
    flip: bool = True
    contrast: float = 0.0
    brightness: float = 0.0
    blur: float = 0.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        for name in ("contrast", "brightness", "blur", "noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"augment {name} must be >= 0, got {getattr(self, name)}")
        if self.blur > 1:
            raise ValueError(f"augment blur is a probability (0..1), got {self.blur}")

    @property
    def photometric(self) -> bool:
        """True when any level change (and hence clamping and 8-bit rounding) is on."""
        return bool(self.contrast or self.brightness or self.blur or self.noise)

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """A randomly changed copy of ``x`` ``(B, C, H, W)``, same shape and dtype."""
        if x.ndim != 4:
            raise ValueError(f"TensorAugment needs a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        if self.rot90:
            x = torch.rot90(x, int(rng.integers(4)), (2, 3))
        if self.flip and rng.uniform() < 0.5:
            x = x.flip(3)
        if not self.photometric:
            return x.contiguous()
        b = x.shape[0]
        shape = (b, 1, 1, 1)
        gain = rng.uniform(1 - self.contrast, 1 + self.contrast, shape).astype(np.float32)
        shift = rng.uniform(-self.brightness, self.brightness, shape).astype(np.float32)
        mean = x.mean((1, 2, 3), keepdim=True)
        x = (x - mean) * torch.from_numpy(gain) + mean + torch.from_numpy(shift)
        if rng.uniform() < self.blur:
            k = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype)
            kernel = (k[:, None] * k[None, :] / 16.0).expand(x.shape[1], 1, 3, 3)
            x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=x.shape[1])
        if self.noise:
            sigma = rng.uniform(0.0, self.noise)
            x = (
                x
                + torch.from_numpy(rng.standard_normal(tuple(x.shape), dtype=np.float32)).to(x.dtype) * sigma
            )
        return ((x.clamp(0.0, 1.0) * 255.0).round() / 255.0).contiguous()

    @classmethod
    def preset(cls, name: str) -> TensorAugment | None:
        """A named setting: ``"geometric"`` (quarter turns and flips), ``"surface"`` (also contrast +-25%,
        brightness +-20 levels, blur 30% of the time, noise up to 5 levels), ``"none"`` (``None``)."""
        presets: dict[str, TensorAugment | None] = {
            "none": None,
            "geometric": cls(),
            "surface": cls(contrast=0.25, brightness=20 / 255, blur=0.3, noise=5 / 255),
        }
        if name not in presets:
            raise ValueError(f"unknown augmentation preset {name!r}; known: {', '.join(presets)}")
        return presets[name]

    @classmethod
    def from_value(cls, value: str | dict[str, Any] | None) -> TensorAugment | None:
        """From a recipe's JSON value: a preset name, an object of fields, or null (no augmentation)."""
        if value is None:
            return None
        if isinstance(value, str):
            return cls.preset(value)
        if isinstance(value, dict):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ValueError(f"unknown augment field(s) {unknown}; known: {sorted(known)}")
            return cls(**value)
        raise ValueError(f"augment must be a preset name, an object or null, got {value!r}")
