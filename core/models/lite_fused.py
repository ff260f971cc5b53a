"""Inference-only forward of the frozen EfficientNet-Lite trunk on oneDNN's fused convolutions (CPU).

The reference forward (:meth:`~core.models.efficientnet_lite.LiteTrunk.reference_stage_maps`) runs every
convolution, then ReLU6, then the residual add, each as its own pass over memory, on NCHW tensors where a
single-image 1x1 convolution takes PyTorch's slow im2col path. Here each convolution goes through oneDNN
(``torch.ops.mkldnn._convolution_pointwise``, the kernel ``torch.compile``'s CPU backend calls) with the ReLU6
clamp or the residual add applied as it writes its output, on channels-last tensors, with the weights reordered
into oneDNN's blocked layout (:class:`FusedTrunk`). The arithmetic is the same up to float rounding (pooled
features within 1e-6 of the reference; tests/core/models/test_lite_fused.py). CPU time on the shared 2-core VM:
about 1.4x less for one image, 1.1-1.2x less for a batch of 32 (docs/benchmarks.md, "Inference speed").

It serves only what it can serve exactly: a CPU float32 input, a trunk with its BatchNorm folded, oneDNN
present, and nothing that needs a gradient (the oneDNN kernels have no backward). Anything else takes the
reference forward, so callers never choose.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from core.models.efficientnet_lite import LiteTrunk

#: ReLU6 as oneDNN's "hardtanh" post-op.
_RELU6 = ("hardtanh", [0.0, 6.0])
_NONE: tuple[str, list[float]] = ("none", [])


def _pointwise_ops() -> tuple[Any, Any] | None:
    """oneDNN's fused convolution ops, or ``None`` where this torch build lacks them."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        op = torch.ops.mkldnn._convolution_pointwise
        return op.default, op.binary
    except (AttributeError, RuntimeError):
        return None


_OPS = _pointwise_ops()


def same_pads(size: Sequence[int], kernel: int, stride: int) -> list[int]:
    """``F.pad`` amounts (left, right, top, bottom) of TensorFlow "same" padding for an ``(H, W)`` input."""
    pads: list[int] = []
    for n in reversed(size):
        total = max((math.ceil(n / stride) - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


@dataclass(frozen=True)
class _Conv:
    """One convolution as oneDNN runs it: prepacked weight, "same" padding, fused activation."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    kernel: int
    stride: int
    groups: int
    act: tuple[str, list[float]]

    def __call__(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        assert _OPS is not None
        k, s = self.kernel, self.stride
        if s == 1 and k % 2:  # symmetric "same": the convolution pads by itself
            padding = [k // 2, k // 2]
        else:  # TensorFlow "same" may be asymmetric: pad first (depends on the input's size)
            pads = same_pads(x.shape[-2:], k, s)
            if any(pads):
                x = F.pad(x, pads)
            padding = [0, 0]
        args = (self.weight, self.bias, padding, [s, s], [1, 1], self.groups)
        if residual is not None:  # project conv + skip: oneDNN adds the residual as it writes
            return _OPS[1](x, residual, *args, "add", None, None, [], None)
        return _OPS[0](x, *args, self.act[0], self.act[1], None)


def _pack(conv: nn.Conv2d, size: int | None, act: tuple[str, list[float]]) -> tuple[_Conv, int | None]:
    """``conv`` ready for oneDNN, and the side of its output for a ``size`` side input.

    With a ``size`` the weight is reordered into the layout oneDNN picks for that input (it differs between
    sizes: weights packed for 224 px ran a 200 x 184 input 2x slower than unpacked ones); ``None`` keeps the
    weight dense (channels-last), which any size takes.
    """
    k, s = conv.kernel_size[0], conv.stride[0]
    if size is None:
        weight = conv.weight.detach().contiguous(memory_format=torch.channels_last)
        out = None
    else:
        padding = [k // 2, k // 2] if s == 1 and k % 2 else [0, 0]
        padded = size + k - 1 if s == 1 and k % 2 else (math.ceil(size / s) - 1) * s + k
        weight = torch.ops.mkldnn._reorder_convolution_weight(
            conv.weight.detach(), padding, [s, s], [1, 1], conv.groups, [1, conv.in_channels, padded, padded]
        )
        out = math.ceil(size / s)
    bias = None if conv.bias is None else conv.bias.detach()
    return _Conv(weight, bias, k, s, conv.groups, act), out


Signature = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class _Plan:
    """Every convolution of the trunk prepared for oneDNN."""

    stem: _Conv
    blocks: list[tuple[_Conv | None, _Conv, _Conv, bool]]  # expand, depthwise, project, skip
    head: _Conv
    convs: list[nn.Module]  # the modules packed, to tell when their weights change
    signature: Signature


def _plan(trunk: LiteTrunk, side: int | None) -> _Plan:
    stem, size = _pack(trunk._conv_stem, side, _RELU6)
    blocks = []
    for block in trunk._blocks:
        expand = None
        if hasattr(block, "_expand_conv"):
            expand, size = _pack(block._expand_conv, size, _RELU6)
        depthwise, size = _pack(block._depthwise_conv, size, _RELU6)
        project, size = _pack(block._project_conv, size, _NONE)
        blocks.append((expand, depthwise, project, bool(block.skip)))
    head, _ = _pack(trunk._conv_head, size, _RELU6)
    convs = [m for m in trunk.modules() if isinstance(m, nn.Conv2d)]
    return _Plan(stem, blocks, head, convs, _signature(convs))


def _signature(convs: Sequence[nn.Module]) -> Signature:
    # Which tensor each weight is, where it lives and how often it was written: weights moved, replaced
    # (torch.func.functional_call swaps them in) or edited in place make a new plan.
    return tuple(
        (id(p), p.data_ptr(), p._version) for c in convs for p in c._parameters.values() if p is not None
    )


class FusedTrunk:
    """The trunk's convolutions prepared for oneDNN, remade whenever its weights change.

    Square input sides seen twice get weights packed for them (up to ``capacity`` sides, least recently used
    dropped; packing costs about 10 ms, repaid within two images at 224 px); any other input runs on dense
    channels-last weights, so parts cropped at a new size every time (the anomaly scorer's native-size crops)
    never pay for packing. Thread-safe: the app embeds labelled parts in one worker while another classifies.
    Not copied with the trunk (a copy starts empty and plans for its own weights).
    """

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = int(capacity)
        self._dense: _Plan | None = None
        self._packed: OrderedDict[int, _Plan] = OrderedDict()
        self._seen: set[int] = set()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, int]:
        return {"capacity": self.capacity}

    def __setstate__(self, state: dict[str, int]) -> None:
        self.__init__(state["capacity"])  # type: ignore[misc]

    def __len__(self) -> int:
        """Plans held (dense and packed)."""
        return int(self._dense is not None) + len(self._packed)

    def clear(self) -> None:
        with self._lock:
            self._dense = None
            self._packed.clear()
            self._seen.clear()

    def plan(self, trunk: LiteTrunk, size: tuple[int, int]) -> _Plan:
        """The plan for an input of ``size`` (H, W), made or remade as needed."""
        side = size[0] if size[0] == size[1] else None
        with self._lock:
            plan = self._packed.get(side) if side is not None else None
            if plan is not None:
                self._packed.move_to_end(side)
            pack = side is not None and (plan is not None or side in self._seen)
            if side is not None and len(self._seen) < 64:
                self._seen.add(side)
            if plan is None and not pack:
                plan = self._dense
        if plan is not None and _signature(plan.convs) == plan.signature:
            return plan
        with torch.no_grad():
            plan = _plan(trunk, side if pack else None)
        with self._lock:
            if pack:
                self._packed[side] = plan
                while len(self._packed) > self.capacity:
                    self._packed.popitem(last=False)
            else:
                self._dense = plan
        return plan

    def stage_maps(self, trunk: LiteTrunk, x: torch.Tensor, stages: Sequence[int]) -> dict[int, torch.Tensor]:
        """As :meth:`LiteTrunk.stage_maps` (channels-last maps); only when :func:`can_fuse` says so."""
        from core.models.efficientnet_lite import HEAD_STAGE

        plan = self.plan(trunk, (int(x.shape[-2]), int(x.shape[-1])))

        def block(i: int, x: torch.Tensor) -> torch.Tensor:
            expand, depthwise, project, skip = plan.blocks[i]
            y = depthwise(x if expand is None else expand(x))
            return project(y, x) if skip else project(y)

        x = plan.stem(x.contiguous(memory_format=torch.channels_last))
        return walk_stages(x, len(plan.blocks), block, trunk.stage_ends, stages, plan.head, HEAD_STAGE)


def can_fuse(trunk: nn.Module, x: torch.Tensor) -> bool:
    """True when the fused forward gives ``trunk``'s maps for ``x``: CPU float32, folded, no gradient needed."""
    if _OPS is None or not torch.backends.mkldnn.enabled:
        return False
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4 or x.shape[0] == 0:
        return False
    if not isinstance(getattr(trunk, "_bn0", None), nn.Identity):  # BatchNorm not folded
        return False
    if not torch.is_grad_enabled():
        return True
    return not (x.requires_grad or any(p.requires_grad for p in trunk.parameters()))


def walk_stages(
    x: torch.Tensor,
    n_blocks: int,
    block: Callable[[int, torch.Tensor], torch.Tensor],
    stage_ends: Sequence[int],
    stages: Sequence[int],
    head: Callable[[torch.Tensor], torch.Tensor],
    head_stage: int,
) -> dict[int, torch.Tensor]:
    """Run blocks ``0..n_blocks-1`` on the stem's output ``x``, keeping the maps of the requested stages (the
    stage ending at block ``stage_ends[s - 1]``; ``head_stage`` = after ``head``) and stopping after the deepest.
    The one stage walk of both trunk forwards (plain modules and fused)."""
    wanted = set(stages)
    deepest = max(wanted)
    out: dict[int, torch.Tensor] = {}
    stage = 1
    for i in range(n_blocks):
        x = block(i, x)
        if i == stage_ends[stage - 1]:
            if stage in wanted:
                out[stage] = x
            if stage == deepest:
                return out
            stage += 1
    out[head_stage] = head(x)
    return out
