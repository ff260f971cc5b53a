"""Patch features for the anomaly scorer: mid-level EfficientNet-Lite maps, locally pooled, at native size.

PatchCore (Roth et al., CVPR 2022) describes each image patch by the backbone's mid-level maps: deep enough
to be robust to noise and small shifts, shallow enough to keep small defects and to stay generic (the deepest
maps are biased towards ImageNet classes). Each chosen stage's map is averaged over its 3x3 neighbourhood
(a patch sees its surroundings without losing resolution), the deeper maps are upsampled to the shallowest
chosen stage's grid and all are concatenated: one vector per grid cell.

Images are not squashed to the classifier's 224x224: the trunk is fully convolutional, so a part is seen at
its own resolution (only shrunk when its longer side exceeds ``max_side``), and a small crack keeps its pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from core.imaging.preprocess import to_channels, to_unit_float
from core.models.efficientnet_lite import LITE_MEAN, LITE_STD, STAGES, LiteTrunk

#: Downsampling factor of each stage's map relative to the input (stem stride 2, then the stage strides).
STAGE_STRIDES: dict[int, int] = {}
_stride = 2
for _i, (_r, _k, _s, _e, _w) in enumerate(STAGES, start=1):
    _stride *= _s
    STAGE_STRIDES[_i] = _stride
del _stride, _i, _r, _k, _s, _e, _w

#: Below this side (pixels) the deepest chosen map would be a few cells: images are upscaled to it.
MIN_SIDE = 64


def prepare_native(image: np.ndarray, max_side: int | None) -> torch.Tensor:
    """OpenCV image (grey, BGR or BGRA; uint8/uint16/float) -> ``(1, 3, H, W)`` float32, Lite-normalised.

    The image keeps its aspect ratio and size unless its longer side exceeds ``max_side`` (then shrunk with
    pixel-area averaging) or its shorter side is under :data:`MIN_SIDE` (then enlarged).

    Raises
    ------
    ValueError
        Not a non-empty 2-D/3-D image array.
    """
    rgb = to_channels(image, 3)
    h, w = rgb.shape[:2]
    scale = 1.0
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
    if min(h, w) * scale < MIN_SIDE:
        scale = MIN_SIDE / min(h, w)
    if scale != 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    arr = to_unit_float(rgb)
    arr = (arr - np.asarray(LITE_MEAN, np.float32)) / np.asarray(LITE_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


class PatchFeatureExtractor:
    """``image -> (h, w, D)`` patch features from a frozen :class:`LiteTrunk`.

    Parameters
    ----------
    trunk
        The frozen EfficientNet-Lite trunk (the shipped model's, so no second model is shipped).
    stages
        Stages to tap (1..7); the grid is that of the shallowest one.
    neighbourhood
        Side of the local average-pooling window (PatchCore's 3; 1 = none).
    max_side
        Longest image side fed to the trunk (``None``: always native).
    """

    def __init__(
        self, trunk: LiteTrunk, stages: Sequence[int], neighbourhood: int = 3, max_side: int | None = None
    ) -> None:
        stages = sorted({int(s) for s in stages})
        if not stages or any(not 1 <= s <= len(STAGES) for s in stages):
            raise ValueError(f"patch stages must be stage numbers 1..{len(STAGES)}, got {stages}")
        if neighbourhood < 1 or neighbourhood % 2 == 0:
            raise ValueError(f"neighbourhood must be a positive odd number, got {neighbourhood}")
        self.trunk = trunk
        self.stages = tuple(stages)
        self.neighbourhood = int(neighbourhood)
        self.max_side = max_side
        self.dim = sum(trunk.stage_widths[s - 1] for s in self.stages)
        self.stride = STAGE_STRIDES[self.stages[0]]

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """One OpenCV image -> ``(h, w, D)`` float32 features on the trunk's device."""
        device = next(self.trunk.parameters()).device
        x = prepare_native(image, self.max_side).to(device)
        return self.from_tensor(x)[0]

    def from_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` Lite-normalised input -> ``(B, h, w, D)`` patch features."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) input, got {tuple(x.shape)}")
        with torch.inference_mode():
            maps = self.trunk.stage_maps(x, self.stages)
            k = self.neighbourhood
            size = maps[self.stages[0]].shape[-2:]
            parts = []
            for s in self.stages:
                m = maps[s]
                if k > 1:
                    m = F.avg_pool2d(m, k, stride=1, padding=k // 2, count_include_pad=False)
                if m.shape[-2:] != size:
                    m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
                parts.append(m)
            return torch.cat(parts, dim=1).permute(0, 2, 3, 1).contiguous()
