"""An independent, plainly written MAML reference on an explicit tiny network (used by the gradient tests).

Nothing here uses core.meta: the network is written as tensor maths on a dict of weights, BatchNorm's
per-task batch statistics included, and the inner loop is unrolled with ``torch.autograd.grad``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-5  # nn.BatchNorm2d's default eps


class TinyNet(nn.Module):
    """conv3x3(1->3) -> [BatchNorm (batch stats) | GroupNorm (1 group)] -> tanh -> avgpool2 -> linear(12 -> n_way).

    ``batch_norm``: False (no norm), True or "batch" (BatchNorm, per-batch statistics), "group" (GroupNorm).
    """

    def __init__(self, n_way: int, batch_norm: bool | str) -> None:
        super().__init__()
        norm: nn.Module = nn.Identity()
        if batch_norm is True or batch_norm == "batch":
            norm = nn.BatchNorm2d(3, track_running_stats=False)
        elif batch_norm == "group":
            norm = nn.GroupNorm(1, 3)
        self.features = nn.Sequential(
            nn.Conv2d(1, 3, 3, padding=1), norm, nn.Tanh(), nn.AvgPool2d(2), nn.Flatten()
        )
        self.head = nn.Linear(12, n_way)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_net(n_way: int, batch_norm: bool | str, seed: int) -> TinyNet:
    torch.manual_seed(seed)
    net = TinyNet(n_way, batch_norm).double()
    if batch_norm:  # move the affine parameters off their trivial init so their gradients are exercised
        with torch.no_grad():
            net.features[1].weight.uniform_(0.5, 1.5)
            net.features[1].bias.uniform_(-0.5, 0.5)
    return net


def weights_of(net: TinyNet) -> dict[str, torch.Tensor]:
    """Leaf copies of the net's parameters under the reference's own names."""
    w = {
        "conv_w": net.features[0].weight,
        "conv_b": net.features[0].bias,
        "head_w": net.head.weight,
        "head_b": net.head.bias,
    }
    if isinstance(net.features[1], nn.BatchNorm2d):
        w["bn_g"] = net.features[1].weight
        w["bn_b"] = net.features[1].bias
    if isinstance(net.features[1], nn.GroupNorm):
        w["gn_g"] = net.features[1].weight
        w["gn_b"] = net.features[1].bias
    return {k: v.detach().clone().requires_grad_() for k, v in w.items()}


def grads_of(net: TinyNet) -> dict[str, torch.Tensor]:
    """The ``.grad`` of the net's parameters under the reference's names."""
    g = {
        "conv_w": net.features[0].weight.grad,
        "conv_b": net.features[0].bias.grad,
        "head_w": net.head.weight.grad,
        "head_b": net.head.bias.grad,
    }
    if isinstance(net.features[1], nn.BatchNorm2d):
        g["bn_g"] = net.features[1].weight.grad
        g["bn_b"] = net.features[1].bias.grad
    if isinstance(net.features[1], nn.GroupNorm):
        g["gn_g"] = net.features[1].weight.grad
        g["gn_b"] = net.features[1].bias.grad
    return g


def features(w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    h = F.conv2d(x, w["conv_w"], w["conv_b"], padding=1)
    if "bn_g" in w:
        mean = h.mean(dim=(0, 2, 3), keepdim=True)
        var = ((h - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        h = (h - mean) / torch.sqrt(var + EPS) * w["bn_g"].view(1, -1, 1, 1) + w["bn_b"].view(1, -1, 1, 1)
    if "gn_g" in w:  # one group: statistics per image over (C, H, W)
        mean = h.mean(dim=(1, 2, 3), keepdim=True)
        var = ((h - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True)
        h = (h - mean) / torch.sqrt(var + EPS) * w["gn_g"].view(1, -1, 1, 1) + w["gn_b"].view(1, -1, 1, 1)
    h = torch.tanh(h)
    h = (h[:, :, 0::2, 0::2] + h[:, :, 1::2, 0::2] + h[:, :, 0::2, 1::2] + h[:, :, 1::2, 1::2]) / 4
    return h.reshape(h.shape[0], -1)


def head(w: dict[str, torch.Tensor], f: torch.Tensor) -> torch.Tensor:
    return f @ w["head_w"].t() + w["head_b"]


def forward(w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return head(w, features(w, x))


def meta_loss(
    w: dict[str, torch.Tensor],
    tasks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
    lr: float | dict[str, torch.Tensor],
    steps: int,
    *,
    second_order: bool,
    head_only: bool = False,
) -> torch.Tensor:
    """Mean over tasks of the query CE after ``steps`` unrolled SGD steps on the support CE."""
    losses = []
    for sx, sy, qx, qy in tasks:
        fast = dict(w)
        names = ["head_w", "head_b"] if head_only else list(w)
        for _ in range(steps):
            loss = F.cross_entropy(forward(fast, sx), sy)
            grads = torch.autograd.grad(loss, [fast[n] for n in names], create_graph=second_order)
            for n, g in zip(names, grads, strict=True):
                step = lr[n] if isinstance(lr, dict) else lr
                fast[n] = fast[n] - step * (g if second_order else g.detach())
        losses.append(F.cross_entropy(forward(fast, qx), qy))
    return torch.stack(losses).mean()


def random_tasks(
    n_tasks: int, n_way: int, k_shot: int, q_query: int, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_tasks):
        sy = torch.arange(n_way).repeat_interleave(k_shot)
        qy = torch.arange(n_way).repeat_interleave(q_query)
        sx = torch.randn(len(sy), 1, 4, 4, generator=g, dtype=torch.float64)
        qx = torch.randn(len(qy), 1, 4, 4, generator=g, dtype=torch.float64)
        out.append((sx, sy, qx, qy))
    return out
