"""Preprocessing shared by capture, training and inference: colour, resize, scale, normalise.

One :class:`Preprocess` record travels inside every checkpoint, so a model always sees images prepared
exactly as during meta-training, whether they come from a data-set zip, a workspace or the live camera.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np
import torch


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model input.

    Parameters
    ----------
    image_size
        Side of the square model input in pixels.
    channels
        1 (grey) or 3 (RGB). Inputs are OpenCV images: ``(H, W)`` grey or ``(H, W, 3)`` BGR, uint8.
    mean, std
        Per-channel normalisation applied after scaling to [0, 1]; one value per channel.
    """

    image_size: int = 28
    channels: int = 1
    mean: tuple[float, ...] = field(default=(0.0,))
    std: tuple[float, ...] = field(default=(1.0,))

    def __post_init__(self) -> None:
        if self.image_size < 4:
            raise ValueError(f"image_size must be at least 4 pixels, got {self.image_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"mean and std need one value per channel ({self.channels}); got {self.mean} and {self.std}"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std values must be positive, got {self.std}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, stored in checkpoints."""
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        """Inverse of :meth:`to_dict`; unknown keys are an error so a bad checkpoint is caught early."""
        known = {"image_size", "channels", "mean", "std"}
        extra = set(data) - known
        if extra:
            raise ValueError(f"unknown preprocessing keys {sorted(extra)}; expected {sorted(known)}")
        return cls(
            image_size=int(data["image_size"]),
            channels=int(data["channels"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
        )

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One OpenCV image -> float32 array ``(C, S, S)``, normalised."""
        img = to_channels(image, self.channels)
        if img.shape[0] != self.image_size or img.shape[1] != self.image_size:
            shrinking = img.shape[0] > self.image_size or img.shape[1] > self.image_size
            interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
            img = cv2.resize(img, (self.image_size, self.image_size), interpolation=interp)
        if img.ndim == 2:
            img = img[:, :, None]
        # Channels first, then normalise each plane in place: broadcasting a 3-value mean over (H, W, 3) runs
        # numpy's innermost loop 3 elements long, ~10x slower for the same float32 arithmetic.
        arr = np.ascontiguousarray(to_unit_float(img).transpose(2, 0, 1))
        arr -= np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)
        arr /= np.asarray(self.std, dtype=np.float32).reshape(-1, 1, 1)
        return arr

    def batch(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Many OpenCV images -> float32 tensor ``(B, C, S, S)``."""
        if len(images) == 0:
            return torch.empty((0, self.channels, self.image_size, self.image_size), dtype=torch.float32)
        return torch.from_numpy(np.stack([self.prepare(im) for im in images]))


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """OpenCV image (grey ``(H, W)``/``(H, W, 1)``, BGR ``(H, W, 3)`` or BGRA) -> grey ``(H, W)`` or RGB."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected a non-empty 2-D grey or 3-D colour image array, got shape {shape}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] not in (3, 4):
        raise ValueError(f"expected 1, 3 or 4 colour channels, got {image.shape[2]}")
    if channels == 1:
        if image.ndim == 2:
            return image
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        return cv2.cvtColor(image, code)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8/uint16/float image -> float32 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(image.astype(np.float32), 0.0, 1.0)
    raise ValueError(f"unsupported image dtype {image.dtype}")
