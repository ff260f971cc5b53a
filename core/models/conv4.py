"""Conv-4: the standard few-shot backbone (4 x [conv3x3, norm, ReLU, maxpool2]) plus a linear head."""

from __future__ import annotations

from torch import nn

from core.models.base import FewShotModel, check_sizes, make_norm
from core.models.registry import register_model


def _block(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    """conv3x3 -> norm -> ReLU -> maxpool2, computed as conv -> norm -> maxpool -> ReLU.

    ReLU is monotonic, so ``maxpool(relu(x)) == relu(maxpool(x))`` exactly; pooling first runs the ReLU and
    its backward on a quarter of the elements (these memory-bound passes are a large share of CPU time).
    """
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1),
        make_norm(norm, c_out),
        nn.MaxPool2d(2),
        nn.ReLU(inplace=False),
    )


@register_model("conv4")
class Conv4(FewShotModel):
    """Conv-4 (Vinyals et al. 2016; Finn et al. 2017) with a linear head.

    Parameters
    ----------
    in_channels
        1 (grey) or 3 (RGB).
    n_way
        Head outputs.
    image_size
        Square input side; at least 16 so four 2x poolings leave a 1x1 map.
    width
        Channels of every conv layer (64 in the papers, 32 for MAML on mini-ImageNet).
    norm
        ``"batch"`` (default: BatchNorm with per-task batch statistics), ``"group"`` (GroupNorm, per image,
        batch-independent predictions) or ``"none"``. See docs/adr/0001 before shipping a model that
        classifies single images.

    Notes
    -----
    ``features``: ``(B, C, S, S) -> (B, width * (S // 16)**2)``, i.e. D = 64 at 28 px and 1600 at 84 px.
    """

    name = "conv4"

    def __init__(
        self,
        in_channels: int = 1,
        n_way: int = 5,
        image_size: int = 28,
        width: int = 64,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        check_sizes("conv4", in_channels, n_way, image_size, width)
        make_norm(norm, width)  # validate the name before building anything
        self.in_channels = in_channels
        self.image_size = image_size
        self._options = {"in_channels": in_channels, "image_size": image_size, "width": width, "norm": norm}
        side = image_size
        for _ in range(4):
            side //= 2
        self.embedding_dim = width * side * side
        self.features = nn.Sequential(
            _block(in_channels, width, norm),
            _block(width, width, norm),
            _block(width, width, norm),
            _block(width, width, norm),
            nn.Flatten(),
        )
        self.head = nn.Linear(self.embedding_dim, n_way)
