"""Pre-activation ResNet-18 of width k, as in Nakkiran et al., "Deep double descent" (2020).

CIFAR-style (He et al. 2016, "Identity mappings"; the layout of kuangliu/pytorch-cifar's
PreActResNet18 that Nakkiran et al. scaled): a 3x3 stem conv (k channels, no max-pool), four
stages of two pre-activation basic blocks with k, 2k, 4k, 8k channels and strides 1, 2, 2, 2,
global average pool, dropout (if asked for), linear K. Convs have no bias; BatchNorm has its
usual scale and shift. Block: BN -> ReLU -> conv3x3(stride) -> BN -> ReLU -> conv3x3, plus the
input, or a 1x1 strided conv of the pre-activated input where the shape changes. Stride-2
convs pad by 1 (H -> ceil(H/2)), so every input of at least 1x1 works.

`resnet18` is k = 64 (11.2M parameters); `resnet18-k<K>` any width k >= 1.
"""

from __future__ import annotations

import torch
from torch import nn

from rethink.errors import RethinkError
from rethink.models._layers import dropout_or_identity
from rethink.models._registry import register_model


class PreActBlock(nn.Module):
    """(B, c_in, H, W) -> (B, c_out, ceil(H/stride), ceil(W/stride))."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.shortcut = (
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            if stride != 1 or c_in != c_out
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + skip


class PreActResNet18(nn.Module):
    """(B, C, H, W) -> (B, K) logits."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        k: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(input_shape[0], k, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        c = k
        for width, stride in ((k, 1), (2 * k, 2), (4 * k, 2), (8 * k, 2)):
            blocks += [PreActBlock(c, width, stride), PreActBlock(width, width, 1)]
            c = width
        self.body = nn.Sequential(*blocks)
        self.drop = dropout_or_identity(dropout)
        self.out = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(x))  # (B, 8k, ceil(H/8), ceil(W/8))
        return self.out(self.drop(x.mean(dim=(2, 3))))


@register_model(
    "resnet18",
    notes="pre-activation ResNet-18, widths 64-128-256-512 (Nakkiran et al. k=64)",
)
def _resnet18(shape: tuple[int, int, int], k: int, dropout: float) -> PreActResNet18:
    return PreActResNet18(shape, k, 64, dropout)


@register_model(
    "resnet18-k<K>",
    pattern=r"resnet18-k(\d+)",
    examples=("resnet18-k4", "resnet18-k16"),
    notes="pre-activation ResNet-18 of width k (k, 2k, 4k, 8k) for double-descent sweeps",
)
def _resnet18_k(shape: tuple[int, int, int], k: int, dropout: float, width: int) -> nn.Module:
    if width < 1:
        raise RethinkError(f"resnet18-k{width} needs a width k >= 1.")
    return PreActResNet18(shape, k, width, dropout)
