"""Several backbones side by side: one input, each part sees it as it was trained, embeddings concatenated.

The shipped model fuses the frozen ImageNet EfficientNet-Lite (strong on real surfaces it never saw) with the
small ``surface_fused`` network trained on the synthetic line's defects (strong on small marks on a large
part, where global ImageNet features are weak). Each part's embedding is L2-normalised and scaled by its
weight, and the whole is rescaled to unit length, so squared distances are ``2 - 2 cos`` and the weights
say how much each part counts (docs/adr/0009 gives the measured choice).

Every part declares the input it expects (``image_size`` and ``mean``/``std`` of a
:class:`~core.imaging.preprocess.Preprocess`, and ``channels``); the fused model undoes the outer
normalisation (``input_mean``/``input_std``, the checkpoint's own preprocessing) and prepares each part's
copy: pixel-area averaging by default, or ``"resize": "bilinear"`` (a two-tap sample, no antialiasing) for a
part trained on crops shrunk by an integer factor. The synthetic line's 128 px crops reach the model enlarged
to 224 px; area-averaging those back to 64 px blurs them well beyond the 2x2 average the ``surface_fused``
part was trained on, and cost it 2.6 points on the unseen variant (95.0 against 97.6, 6-way 5-shot), while a
bilinear sample of the enlarged image lands on those 2x2 averages again (97.5; docs/adr/0009).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.models.base import FewShotModel
from core.models.registry import create_model, register_model

#: How a part's copy is resized: pixel-area averaging, or a plain bilinear sample (see the module docstring).
RESIZES = ("area", "bilinear")
#: ITU-R BT.601 luma weights, as OpenCV's RGB -> grey conversion (the Preprocess of grey models).
_LUMA = (0.299, 0.587, 0.114)


class PartInput(nn.Module):
    """Turns the fused model's input into one part's input: unnormalise, resize, grey, normalise."""

    def __init__(
        self,
        input_mean: Sequence[float],
        input_std: Sequence[float],
        image_size: int | None,
        channels: int,
        mean: Sequence[float],
        std: Sequence[float],
        resize: str = "area",
    ) -> None:
        super().__init__()
        if resize not in RESIZES:
            raise ValueError(f"a part's resize must be one of {', '.join(RESIZES)}, got {resize!r}")
        if channels not in (1, 3) or len(mean) != channels or len(std) != channels:
            raise ValueError(
                f"a part's input needs channels 1 or 3 and one mean/std per channel, got {channels}"
            )
        self.image_size = None if image_size is None else int(image_size)
        self.channels = int(channels)
        self.resize = resize
        self.register_buffer("outer_mean", torch.tensor(list(input_mean)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("outer_std", torch.tensor(list(input_std)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("luma", torch.tensor(_LUMA).view(1, 3, 1, 1), persistent=False)
        #: the part wants the input's own normalisation: nothing to undo or redo
        self.same_normalisation = (
            channels == 3 and list(mean) == list(input_mean) and list(std) == list(input_std)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        resize = self.image_size is not None and tuple(x.shape[-2:]) != (self.image_size, self.image_size)
        if self.same_normalisation and x.shape[1] == 3 and not resize:
            return x  # undoing and redoing the same normalisation: two passes for float rounding only
        # Otherwise this order, exactly: the texture histograms round grey levels, and area averages of whole
        # grey levels often land on a tie that another order of the same arithmetic rounds the other way.
        x = x * self.outer_std + self.outer_mean  # back to [0, 1]
        if resize:
            size = (self.image_size, self.image_size)
            shrink = x.shape[-1] >= self.image_size and x.shape[-2] >= self.image_size
            if shrink and self.resize == "area":
                x = F.interpolate(x, size=size, mode="area")  # pixel-area averaging, as OpenCV's INTER_AREA
            else:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if self.channels == 1 and x.shape[1] == 3:
            x = (x * self.luma).sum(1, keepdim=True)
        return (x - self.mean) / self.std


class FusedFeatures(nn.Module):
    """``(B, C, H, W) -> (B, sum D_i)``: each part's normalised embedding times its weight, unit length overall.

    A part whose features have optional dimensions (``core_dim``, ``optional``: EfficientNet's covariance
    groups) is normalised by its core dimensions alone, so leaving the optional ones out gives the embedding
    the model would have without them.
    """

    def __init__(
        self, parts: Sequence[nn.Module], inputs: Sequence[PartInput], weights: Sequence[float]
    ) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.inputs = nn.ModuleList(inputs)
        self.weights = [float(w) for w in weights]
        self.norm = math.sqrt(sum(w * w for w in self.weights))
        self.dim = sum(int(p.embedding_dim) for p in parts)
        self.optional = torch.cat(
            [
                getattr(
                    p, "optional_features", torch.zeros(int(p.embedding_dim), dtype=torch.bool, device="cpu")
                )
                for p in parts
            ]
        )
        # which part each dimension belongs to (the learner may re-weight the parts per task)
        self.part_of = torch.cat(
            [torch.full((int(p.embedding_dim),), i, device="cpu") for i, p in enumerate(parts)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for part, prep, w in zip(self.parts, self.inputs, self.weights, strict=True):
            f = part.features(prep(x))
            core = getattr(part.features, "core_dim", f.shape[1])  # F.normalize's formula, over the core
            out.append(w * f / f[:, :core].norm(dim=1, keepdim=True).clamp_min(1e-12))
        return torch.cat(out, dim=1) / self.norm


class FusedModel(FewShotModel):
    """Backbones side by side (see the module docstring); ``parts.i`` is part i's whole model."""

    def __init__(
        self,
        parts: Sequence[dict[str, Any]],
        n_way: int = 5,
        input_mean: Sequence[float] = (0.0, 0.0, 0.0),
        input_std: Sequence[float] = (1.0, 1.0, 1.0),
    ) -> None:
        super().__init__()
        if not parts or not all(isinstance(p, dict) and isinstance(p.get("model"), dict) for p in parts):
            raise ValueError(
                "a fused model needs a list of parts, each {'model': {...}, 'input': {...}, 'weight': w}"
            )
        if len(input_mean) != 3 or len(input_std) != 3:
            raise ValueError("a fused model takes RGB input: input_mean and input_std need three values")
        models, inputs, weights = [], [], []
        for spec in parts:
            model = create_model(**spec["model"])
            inp = dict(spec.get("input") or {})
            inputs.append(
                PartInput(
                    input_mean,
                    input_std,
                    inp.get("image_size"),
                    int(inp.get("channels", 3)),
                    inp.get("mean", (0.0,) * int(inp.get("channels", 3))),
                    inp.get("std", (1.0,) * int(inp.get("channels", 3))),
                    str(inp.get("resize", "area")),
                )
            )
            weight = float(spec.get("weight", 1.0))
            if not weight > 0:
                raise ValueError(f"part weights must be positive, got {weight}")
            models.append(model)
            weights.append(weight)
        self.features = FusedFeatures(models, inputs, weights)
        self.embedding_dim = self.features.dim
        self.optional_features = self.features.optional  # dimensions the learner may leave out per task
        self.feature_parts = self.features.part_of  # (D,) part index of each dimension
        self.part_weights = tuple(self.features.weights)
        self.head = nn.Linear(self.embedding_dim, int(n_way))
        self.in_channels = 3
        self.image_size = None
        self.batch_independent = all(getattr(m, "batch_independent", False) for m in models)
        self.name = "fused"
        self._options = {
            "in_channels": 3,
            "parts": [dict(p) for p in parts],
            "input_mean": [float(v) for v in input_mean],
            "input_std": [float(v) for v in input_std],
        }

    @property
    def weights_sha256(self) -> str | None:
        """The pretrained weights' hash of the first part that has one (for provenance)."""
        return next(
            (getattr(p, "weights_sha256", None) for p in self.features.parts if hasattr(p, "weights_sha256")),
            None,
        )


@register_model("fused")
def build_fused(
    in_channels: int = 3,
    n_way: int = 5,
    image_size: int | None = None,
    width: int | None = None,
    parts: Sequence[dict[str, Any]] = (),
    input_mean: Sequence[float] = (0.0, 0.0, 0.0),
    input_std: Sequence[float] = (1.0, 1.0, 1.0),
) -> FusedModel:
    """A :class:`FusedModel`; RGB input of any size (``image_size`` and ``width`` are the parts' business)."""
    del image_size, width
    if int(in_channels) != 3:
        raise ValueError(f"the fused model takes RGB input (in_channels=3), got {in_channels}")
    return FusedModel(parts, n_way=n_way, input_mean=input_mean, input_std=input_std)
