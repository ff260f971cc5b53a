"""Texture backbones: classic texture histograms computed in torch, with a meta-learned embedding on top.

Small CNNs meta-trained on the few defect classes there are do not generalise to unseen defect types, while
classic texture histograms do (docs/adr/0005). These backbones start from those histograms and learn only
what sits on top, so any learner (protonet, maml, incontext, ...) and the app can use them by name:

- ``texture``: ``features(x) = MLP(sqrt(histograms(x)))``: grey-level, gradient-orientation and uniform-LBP
  histograms (the torch mirror of ``core.lab.texture_features``) under the Hellinger map, then a residual MLP.
- ``texture_fused``: ``concat(texture features, normalised Conv-4 embedding)``: classic and learned texture.

The histogram extractor has no parameters and no gradient w.r.t. its input; it accepts any image size.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.imaging.lbp import LBP_OFFSETS, LBP_UNIFORM_BINS, UNIFORM_LBP_TABLE
from core.models.base import FewShotModel, make_norm
from core.models.registry import register_model

LBP_BINS = LBP_UNIFORM_BINS
_GREY_WEIGHTS_RGB = (0.299, 0.587, 0.114)  # ITU-R BT.601, as OpenCV's RGB->grey


def _uniform_lbp_table() -> torch.Tensor:
    return torch.from_numpy(UNIFORM_LBP_TABLE.copy())


def _histogram(idx: torch.Tensor, bins: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row histogram: ``idx`` ``(B, P)`` long in [0, bins) -> L1-normalised ``(B, bins)`` (zeros if empty)."""
    w = torch.ones_like(idx, dtype=torch.float32) if weights is None else weights.float()
    hist = torch.zeros(idx.shape[0], bins, dtype=torch.float32, device=idx.device).scatter_add_(1, idx, w)
    return hist / hist.sum(1, keepdim=True).clamp_min(1e-12)


class TextureHistograms(nn.Module):
    """Parameter-free texture descriptor: ``(B, C, H, W)`` normalised images -> ``(B, dim)`` histograms.

    Parameters
    ----------
    grey_bins, orientation_bins, scales
        As :class:`core.lab.texture_features.TextureFeatureConfig` (grey histogram once, gradient-orientation
        and LBP histograms at every power-of-two downscale in ``scales``).
    input_mean, input_std
        The :class:`Preprocess` normalisation of the input, undone to recover 0..255 grey levels.
    hellinger
        Return the square root of the histograms (Euclidean distance = Hellinger distance; each block then
        has unit L2 norm).
    """

    def __init__(
        self,
        grey_bins: int = 32,
        orientation_bins: int = 12,
        scales: tuple[int, ...] = (1, 2),
        input_mean: tuple[float, ...] = (0.0,),
        input_std: tuple[float, ...] = (1.0,),
        hellinger: bool = True,
    ) -> None:
        super().__init__()
        if grey_bins < 2 or 256 % grey_bins:
            raise ValueError(f"grey_bins must divide 256 and be >= 2, got {grey_bins}")
        if orientation_bins < 2:
            raise ValueError(f"orientation_bins must be at least 2, got {orientation_bins}")
        if not scales or any(int(s) < 1 or int(s) & (int(s) - 1) for s in scales):
            raise ValueError(f"scales must be a non-empty sequence of powers of two, got {scales}")
        if len(input_mean) != len(input_std) or any(s <= 0 for s in input_std):
            raise ValueError(
                f"input_mean/input_std must have equal lengths and std > 0, got {input_mean}, {input_std}"
            )
        self.grey_bins = int(grey_bins)
        self.orientation_bins = int(orientation_bins)
        self.scales = tuple(int(s) for s in scales)
        self.hellinger = bool(hellinger)
        self.dim = self.grey_bins + len(self.scales) * (self.orientation_bins + LBP_BINS)
        self.register_buffer("lbp_table", _uniform_lbp_table(), persistent=False)
        self.register_buffer(
            "mean", torch.tensor(input_mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(input_std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
        )
        # written out, not stacked: checkpoints are built under torch.device("meta"), where torch.stack runs
        # through torch's Python reference kernels and imports torch._dynamo (2.5 s of CPU at every start-up)
        sobel = [
            [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
            [[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]],
        ]
        self.register_buffer("sobel", torch.tensor(sobel).unsqueeze(1), persistent=False)

    def grey_levels(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` normalised -> ``(B, 1, H, W)`` float grey levels rounded to 0..255."""
        c = x.shape[1]
        if self.mean.shape[1] not in (1, c):
            raise ValueError(f"texture input has {c} channels but its normalisation has {self.mean.shape[1]}")
        unit = (x.float() * self.std + self.mean).clamp(0.0, 1.0)
        if c == 3:
            w = torch.tensor(_GREY_WEIGHTS_RGB, device=x.device).view(1, 3, 1, 1)
            unit = (unit * w).sum(1, keepdim=True)
        elif c != 1:
            raise ValueError(f"texture features need 1 (grey) or 3 (RGB) channels, got {c}")
        return (unit * 255.0).round()

    def _gradient_orientation(self, g: torch.Tensor) -> torch.Tensor:
        # Grey levels are integers, so float32 Sobel responses are exact; the angle is taken in float64 so
        # orientations on a bin edge (gx == gy) bin exactly as in the numpy reference.
        grad = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="reflect"), self.sobel)  # (B, 2, H, W)
        gx, gy = grad[:, 0].flatten(1).double(), grad[:, 1].flatten(1).double()
        magnitude = torch.sqrt(gx * gx + gy * gy)
        angle = torch.remainder(torch.atan2(gy, gx), math.pi)
        idx = (angle * (self.orientation_bins / math.pi)).long().clamp_(0, self.orientation_bins - 1)
        return _histogram(idx, self.orientation_bins, magnitude)

    def _lbp(self, g: torch.Tensor) -> torch.Tensor:
        h, w = g.shape[2], g.shape[3]
        centre = g[:, 0, 1 : h - 1, 1 : w - 1]
        codes = torch.zeros_like(centre, dtype=torch.long)
        for bit, (dy, dx) in enumerate(LBP_OFFSETS):
            codes |= (g[:, 0, 1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] >= centre).long() << bit
        return _histogram(self.lbp_table[codes.flatten(1)], LBP_BINS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> histograms ``(B, dim)`` (no gradient flows to ``x``)."""
        if x.dim() != 4 or x.shape[2] < 3 * max(self.scales) or x.shape[3] < 3 * max(self.scales):
            raise ValueError(
                f"texture features need (B, C, H, W) images of at least {3 * max(self.scales)} px, got {tuple(x.shape)}"
            )
        with torch.no_grad():
            g = self.grey_levels(x)
            idx = (g.flatten(1).long() * self.grey_bins) >> 8
            parts = [_histogram(idx, self.grey_bins)]
            for s in self.scales:
                gs = g if s == 1 else F.avg_pool2d(g.double(), s).round().float()
                parts += [self._gradient_orientation(gs), self._lbp(gs)]
            out = torch.cat(parts, 1)
            return out.sqrt() if self.hellinger else out


class TextureEmbedding(nn.Module):
    """``sqrt(histograms)`` -> ``(B, out_dim)``: a scaled identity path plus a learned residual MLP.

    With ``residual=True`` the identity path keeps the classic descriptor (so training starts from texture NCM
    and learns corrections); the MLP's last layer starts at zero for that reason.
    """

    def __init__(
        self, histograms: TextureHistograms, hidden: int, out_dim: int, residual: bool = True
    ) -> None:
        super().__init__()
        self.histograms = histograms
        d = histograms.dim
        self.residual = residual
        self.skip = nn.Linear(d, out_dim, bias=False)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
        if residual:
            with torch.no_grad():
                eye = torch.zeros(out_dim, d)
                eye[: min(d, out_dim), : min(d, out_dim)] = torch.eye(min(d, out_dim))
                self.skip.weight.copy_(eye)
                self.mlp[2].weight.zero_()
                self.mlp[2].bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.histograms(x)
        return self.skip(h) + self.mlp(h)


@register_model("texture")
class TextureNet(FewShotModel):
    """Texture-histogram backbone with a learned embedding and a linear head; any image size.

    Parameters
    ----------
    in_channels
        1 (grey) or 3 (RGB; converted to grey levels inside).
    n_way
        Head outputs.
    image_size
        Recorded for the config only: the histograms accept any size (the Preprocess fixes it).
    width
        Hidden width of the MLP.
    out_dim
        Embedding size D; 0 means the histogram length (identity-initialised skip path).
    residual
        Keep the identity path (recommended); False gives a plain MLP (the "random weights" control).
    grey_bins, orientation_bins, scales, input_mean, input_std
        See :class:`TextureHistograms`.

    Notes
    -----
    ``features``: ``(B, C, H, W) -> (B, D)``.
    """

    name = "texture"

    def __init__(
        self,
        in_channels: int = 1,
        n_way: int = 5,
        image_size: int = 64,
        width: int = 256,
        out_dim: int = 0,
        residual: bool = True,
        grey_bins: int = 32,
        orientation_bins: int = 12,
        scales: tuple[int, ...] | list[int] = (1, 2),
        input_mean: tuple[float, ...] | list[float] = (0.0,),
        input_std: tuple[float, ...] | list[float] = (1.0,),
    ) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"texture backbones take 1 (grey) or 3 (RGB) channels, got {in_channels}")
        if width < 1 or n_way < 1 or out_dim < 0:
            raise ValueError(
                f"width and n_way must be positive and out_dim >= 0, got {width}, {n_way}, {out_dim}"
            )
        hist = TextureHistograms(
            grey_bins, orientation_bins, tuple(scales), tuple(input_mean), tuple(input_std)
        )
        self.in_channels = in_channels
        self.image_size = None
        self.embedding_dim = out_dim or hist.dim
        self._options: dict[str, Any] = {
            "in_channels": in_channels, "image_size": image_size, "width": width, "out_dim": out_dim,
            "residual": residual, "grey_bins": grey_bins, "orientation_bins": orientation_bins,
            "scales": list(scales), "input_mean": list(input_mean), "input_std": list(input_std),
        }  # fmt: skip
        self.features = TextureEmbedding(hist, width, self.embedding_dim, residual)
        self.head = nn.Linear(self.embedding_dim, n_way)


class _Conv4Features(nn.Module):
    """Conv-4 trunk with global mean+max pooling: any input size -> ``(B, 2 * width)``, L2-normalised * scale.

    Max pooling keeps a small local defect visible however large the part is; mean pooling keeps the overall
    surface look.
    """

    def __init__(self, in_channels: int, width: int, norm: str, scale: float = 4.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        # Half width in the two high-resolution blocks: they dominate the cost (4x fewer FLOPs on CPU), and
        # edge/spot detectors there need few channels.
        for w in (max(1, width // 2), max(1, width // 2), width, width):
            layers += [nn.Conv2d(c, w, 3, padding=1), make_norm(norm, w), nn.ReLU(), nn.MaxPool2d(2)]
            c = w
        self.trunk = nn.Sequential(*layers)
        # Unit vectors are at most 2 apart, so ProtoNet logits -|a - b|^2 would stay in [-4, 0] and training
        # would crawl until the scale grew; start it where the logits can be confident (cosine-classifier
        # temperatures are 10-30).
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.trunk(x)
        pooled = torch.cat([maps.mean((2, 3)), maps.amax((2, 3))], 1)
        return F.normalize(pooled, dim=1) * self.scale


class FusedFeatures(nn.Module):
    """``concat(texture_scale * texture embedding, normalised CNN embedding * its scale)``.

    The two learned scales set how much each branch weighs in a distance; ``texture_scale`` lives here so it
    still learns when the texture branch itself is frozen.
    """

    def __init__(self, texture: TextureEmbedding, cnn: _Conv4Features, texture_scale: float = 4.0) -> None:
        super().__init__()
        self.texture = texture
        self.cnn = cnn
        self.texture_scale = nn.Parameter(torch.tensor(float(texture_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.texture(x) * self.texture_scale, self.cnn(x)], 1)


@register_model("texture_fused")
class TextureFusedNet(TextureNet):
    """:class:`TextureNet` features concatenated with an L2-normalised Conv-4 (global-average-pooled) embedding.

    Extra parameters: ``cnn_width`` (Conv-4 channels), ``norm`` (``"batch"``, ``"group"`` or ``"none"``) and
    ``cnn_scale`` (initial length of the CNN embedding; learned).
    ``features``: ``(B, C, H, W) -> (B, D_texture + 2 * cnn_width)``; inputs of at least 16 px.
    """

    name = "texture_fused"

    def __init__(
        self, *args: Any, cnn_width: int = 32, norm: str = "group", cnn_scale: float = 4.0, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        if cnn_scale <= 0:
            raise ValueError(f"cnn_scale must be positive, got {cnn_scale}")
        cnn = _Conv4Features(self.in_channels, cnn_width, norm, cnn_scale)
        self.features = FusedFeatures(self.features, cnn)
        self.embedding_dim += 2 * cnn_width
        self.head = nn.Linear(self.embedding_dim, self.head.out_features)
        self._options.update(cnn_width=cnn_width, norm=norm, cnn_scale=cnn_scale)

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        if x.shape[2] < 16 or x.shape[3] < 16:
            raise ValueError(
                f"texture_fused needs images of at least 16x16 px, got {x.shape[2]}x{x.shape[3]}"
            )
