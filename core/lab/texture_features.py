"""Classic texture features on OpenCV images: grey-level, gradient-orientation and uniform-LBP histograms.

These are the hand-made descriptors that surface inspection used before deep learning. They are the baseline
every learned model must beat on unseen defect types (see ``core.lab.baselines``), and their torch mirror in
``core.models.texture`` feeds the fused backbone. All work is vectorised numpy/OpenCV: no Python loop over
pixels.

Every histogram is L1-normalised (sums to 1, or is all zeros for a flat image), so images of any size compare;
:func:`texture_features` concatenates one block per histogram and scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from core.imaging.lbp import LBP_OFFSETS, LBP_UNIFORM_BINS, UNIFORM_LBP_TABLE
from core.imaging.preprocess import to_channels


@dataclass(frozen=True)
class TextureFeatureConfig:
    """Which histograms to compute and at which resolution.

    Parameters
    ----------
    size
        Images are converted to grey and resized to ``size x size`` first, so descriptors of differently sized
        images compare and match what a model with that input size sees.
    grey_bins
        Bins of the grey-level histogram (over 0..255); must divide 256.
    orientation_bins
        Bins of the unsigned gradient-orientation histogram over [0, pi), weighted by gradient magnitude.
    scales
        Downscale factors (powers of two); the gradient and LBP histograms are computed at each. The grey-level
        histogram is computed once (it hardly changes with scale).
    """

    size: int = 64
    grey_bins: int = 32
    orientation_bins: int = 12
    scales: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"size must be at least 8 pixels, got {self.size}")
        if self.grey_bins < 2 or 256 % self.grey_bins:
            raise ValueError(f"grey_bins must divide 256 and be >= 2, got {self.grey_bins}")
        if self.orientation_bins < 2:
            raise ValueError(f"orientation_bins must be at least 2, got {self.orientation_bins}")
        if not self.scales or any(s < 1 or s & (s - 1) for s in self.scales):
            raise ValueError(f"scales must be a non-empty tuple of powers of two, got {self.scales}")
        if self.size // max(self.scales) < 8:
            raise ValueError(
                f"size {self.size} is too small for scale {max(self.scales)} (needs >= 8 px left)"
            )

    @property
    def dim(self) -> int:
        """Length of the feature vector."""
        return self.grey_bins + len(self.scales) * (self.orientation_bins + LBP_UNIFORM_BINS)

    @property
    def blocks(self) -> tuple[int, ...]:
        """Lengths of the concatenated histogram blocks, in order (each block sums to 1)."""
        per_scale = (self.orientation_bins, LBP_UNIFORM_BINS)
        return (self.grey_bins, *(b for _ in self.scales for b in per_scale))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["scales"] = list(self.scales)
        return d


def _l1(hist: np.ndarray) -> np.ndarray:
    total = hist.sum()
    return (hist / total).astype(np.float32) if total > 0 else hist.astype(np.float32)


def grey_level_histogram(grey: np.ndarray, bins: int = 32) -> np.ndarray:
    """Histogram of a uint8 grey image ``(H, W)`` -> ``(bins,)`` float32, L1-normalised."""
    hist = np.bincount((grey.ravel().astype(np.int64) * bins) >> 8, minlength=bins)
    return _l1(hist)


def gradient_orientation_histogram(grey: np.ndarray, bins: int = 12) -> np.ndarray:
    """Unsigned gradient orientation over [0, pi), weighted by magnitude: uint8 ``(H, W)`` -> ``(bins,)``."""
    # float64 so orientations that fall exactly on a bin edge (e.g. gx == gy) bin the same everywhere
    img = grey.astype(np.float64)
    gx = cv2.Sobel(img, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_64F, 0, 1, ksize=3)
    magnitude = np.sqrt(gx * gx + gy * gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)
    idx = np.minimum((angle * (bins / np.pi)).astype(np.int64), bins - 1)
    hist = np.bincount(idx.ravel(), weights=magnitude.ravel(), minlength=bins)
    return _l1(hist)


def lbp_codes(grey: np.ndarray) -> np.ndarray:
    """8-neighbour, radius-1 LBP codes of the interior pixels: uint8 ``(H, W)`` -> int64 ``(H-2, W-2)``."""
    h, w = grey.shape
    centre = grey[1 : h - 1, 1 : w - 1]
    codes = np.zeros(centre.shape, dtype=np.int64)
    for bit, (dy, dx) in enumerate(LBP_OFFSETS):
        neighbour = grey[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
        codes |= (neighbour >= centre).astype(np.int64) << bit
    return codes


def uniform_lbp_histogram(grey: np.ndarray) -> np.ndarray:
    """Uniform-LBP histogram (58 uniform patterns + 1 other): uint8 ``(H, W)`` -> ``(59,)``, L1-normalised."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        raise ValueError(f"LBP needs an image of at least 3x3 pixels, got {grey.shape}")
    mapped = UNIFORM_LBP_TABLE[lbp_codes(grey)]
    return _l1(np.bincount(mapped.ravel(), minlength=LBP_UNIFORM_BINS))


def prepare_grey(image: np.ndarray, size: int) -> np.ndarray:
    """OpenCV image (grey/BGR/BGRA, uint8) -> uint8 grey ``(size, size)``."""
    grey = to_channels(image, 1)
    if grey.dtype != np.uint8:
        raise ValueError(f"texture features need uint8 images, got {grey.dtype}")
    if grey.shape != (size, size):
        shrinking = grey.shape[0] > size or grey.shape[1] > size
        grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return grey


def block_mean(grey: np.ndarray, factor: int) -> np.ndarray:
    """Downscale uint8 ``(H, W)`` by averaging ``factor x factor`` blocks (edge remainder dropped), rounded
    half-to-even, exactly as ``avg_pool2d`` + ``round`` in the torch mirror."""
    h, w = (grey.shape[0] // factor) * factor, (grey.shape[1] // factor) * factor
    blocks = grey[:h, :w].reshape(h // factor, factor, w // factor, factor).astype(np.float64)
    return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def texture_features(image: np.ndarray, config: TextureFeatureConfig | None = None) -> np.ndarray:
    """One OpenCV image -> texture feature vector ``(config.dim,)`` float32 (concatenated L1 histograms).

    Block order: grey-level histogram, then for each scale its gradient-orientation and LBP histograms
    (see :attr:`TextureFeatureConfig.blocks`).
    """
    cfg = config or TextureFeatureConfig()
    grey = prepare_grey(image, cfg.size)
    parts = [grey_level_histogram(grey, cfg.grey_bins)]
    for scale in cfg.scales:
        g = grey if scale == 1 else block_mean(grey, scale)
        parts.append(gradient_orientation_histogram(g, cfg.orientation_bins))
        parts.append(uniform_lbp_histogram(g))
    return np.concatenate(parts)


def texture_features_batch(
    images: Sequence[np.ndarray], config: TextureFeatureConfig | None = None
) -> np.ndarray:
    """Many OpenCV images -> ``(B, config.dim)`` float32."""
    cfg = config or TextureFeatureConfig()
    if len(images) == 0:
        return np.zeros((0, cfg.dim), dtype=np.float32)
    return np.stack([texture_features(im, cfg) for im in images])


def hellinger(features: np.ndarray) -> np.ndarray:
    """Square root of L1 histograms: Euclidean distance on the result is the Hellinger distance, which suits
    histograms better than Euclidean on the raw bins (each block then has unit L2 norm and weighs the same)."""
    return np.sqrt(np.maximum(features, 0.0))
