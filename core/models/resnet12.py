"""A small ResNet-12 (Oreshkin et al. 2018; Lee et al. 2019) with global average pooling and a linear head."""

from __future__ import annotations

import torch
from torch import nn

from core.models.base import FewShotModel, check_sizes, make_norm
from core.models.registry import register_model


class _ResidualBlock(nn.Module):
    """3 x [conv3x3, norm, LeakyReLU] with a 1x1 shortcut, then maxpool2."""

    def __init__(self, c_in: int, c_out: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm1 = make_norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = make_norm(norm, c_out)
        self.conv3 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm3 = make_norm(norm, c_out)
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), make_norm(norm, c_out))
        self.act = nn.LeakyReLU(0.1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c_in, H, W) -> (B, c_out, H // 2, W // 2)``."""
        out = self.act(self.norm1(self.conv1(x)))
        out = self.act(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        return self.pool(self.act(out + self.shortcut(x)))


class _GlobalPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C)``."""
        return x.mean(dim=(2, 3))


@register_model("resnet12")
class ResNet12(FewShotModel):
    """ResNet-12 with channel widths ``(w, 2w, 4w, 8w)``; any input size >= 16 works (global pooling).

    Parameters
    ----------
    in_channels, n_way, width, norm
        As for Conv-4; ``width=64`` gives the common 64-128-256-512 variant (about 8M parameters), use 16-32
        for a CPU-sized model.
    image_size
        Recorded in ``config()``; inputs of other sizes are accepted.

    Notes
    -----
    ``features``: ``(B, C, H, W) -> (B, 8 * width)``.
    """

    name = "resnet12"

    def __init__(
        self,
        in_channels: int = 1,
        n_way: int = 5,
        image_size: int = 28,
        width: int = 64,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        check_sizes("resnet12", in_channels, n_way, image_size, width)
        make_norm(norm, width)
        self.in_channels = in_channels
        self.image_size = None
        self._options = {"in_channels": in_channels, "image_size": image_size, "width": width, "norm": norm}
        widths = (width, 2 * width, 4 * width, 8 * width)
        blocks: list[nn.Module] = []
        c_in = in_channels
        for c_out in widths:
            blocks.append(_ResidualBlock(c_in, c_out, norm))
            c_in = c_out
        self.embedding_dim = widths[-1]
        self.features = nn.Sequential(*blocks, _GlobalPool())
        self.head = nn.Linear(self.embedding_dim, n_way)

    def check_input(self, x: torch.Tensor) -> None:
        """As :meth:`FewShotModel.check_input`, and the spatial size must survive four poolings."""
        super().check_input(x)
        if min(x.shape[2], x.shape[3]) < 16:
            raise ValueError(f"resnet12 needs images of at least 16x16, got {x.shape[2]}x{x.shape[3]}")
