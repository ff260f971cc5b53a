"""The support set of an adapted classifier stored as the 8-bit pixels it came from, not as float32.

An adapted model file carries its labelled support set so it can be re-adapted after a restart. Prepared
images are ``(u / 255 - mean) / std`` of 8-bit pixels ``u``: storing ``u`` is four times smaller (30 parts at
224 px: 4.5 MB instead of 18 MB per model version) and loses nothing, because the float tensor is rebuilt with
the same float32 operations. A support set that does not come from 8-bit pixels is kept as float32.
"""

from __future__ import annotations

import torch

from core.imaging.preprocess import Preprocess


def _stats(pre: Preprocess, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(1, -1, 1, 1)
    if mean.shape[1] != channels:
        raise ValueError(f"preprocessing has {mean.shape[1]} channel statistics, the support set {channels}")
    return mean, std


def unpack_support(x: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """Float32 support images ``(B, C, S, S)`` from stored 8-bit pixels (float input is returned as is)."""
    if x.is_floating_point():
        return x.to(torch.float32)
    if x.dtype != torch.uint8:
        raise ValueError(f"a stored support set is float32 or uint8, not {x.dtype}")
    mean, std = _stats(pre, x.shape[1])
    return (x.to(torch.float32) / 255.0 - mean) / std


def pack_support(x: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """The 8-bit pixels behind prepared images ``x`` when they rebuild ``x`` exactly, else ``x`` as float32."""
    x = x.detach().to("cpu", torch.float32).contiguous()
    if x.dim() != 4 or x.numel() == 0:
        return x
    try:
        mean, std = _stats(pre, x.shape[1])
    except ValueError:
        return x
    packed = torch.empty(x.shape, dtype=torch.uint8)
    for i in range(x.shape[0]):  # one image at a time: 30 parts at 224 px made ~150 MB of temporaries at once
        image = x[i : i + 1]
        pixels = ((image * std + mean) * 255.0).round()
        if not bool(((pixels >= 0) & (pixels <= 255)).all()):
            return x
        packed[i : i + 1] = pixels.to(torch.uint8)
        if not torch.equal(unpack_support(packed[i : i + 1], pre), image):
            return x
    return packed
