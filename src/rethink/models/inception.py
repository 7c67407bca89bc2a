"""The paper's small Inception (Appendix A, Fig. 3), with and without BatchNorm.

Conv module: conv (with bias) -> BatchNorm without learnable scale/shift -> ReLU (the "nobn"
variant drops the BatchNorm; same parameter count). Inception(c1, c3) concatenates a 1x1 and
a 3x3 conv module; Downsample(c3) concatenates a 3x3 stride-2 conv module and a 3x3 stride-2
max-pool. Stride-2 layers pad by 1, so H x W becomes ceil(H/2) x ceil(W/2) (28 -> 14 -> 7;
8 -> 4 -> 2; 1x40 -> 1x10): every input size of at least 1x1 works.

    Conv(96, 3x3) -> Inc(32,32) -> Inc(32,48) -> Down(80) -> Inc(112,48) -> Inc(96,64)
    -> Inc(80,80) -> Inc(48,96) -> Down(96) -> Inc(176,160) -> Inc(176,160)
    -> global mean pool -> dropout -> linear K          (1,649,402 params for 3x28x28, K=10)
"""

from __future__ import annotations

import torch
from torch import nn

from rethink.models._layers import dropout_or_identity
from rethink.models._registry import register_model


class ConvModule(nn.Module):
    """conv(k x k, stride) -> BatchNorm(affine=False) or nothing -> ReLU; "same" padding."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, bn: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2)
        self.bn = nn.BatchNorm2d(c_out, affine=False) if bn else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """(B, C, H, W) -> (B, c1 + c3, H, W)."""

    def __init__(self, c_in: int, c1: int, c3: int, bn: bool) -> None:
        super().__init__()
        self.b1 = ConvModule(c_in, c1, 1, bn=bn)
        self.b3 = ConvModule(c_in, c3, 3, bn=bn)
        self.c_out = c1 + c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x)], dim=1)


class Downsample(nn.Module):
    """(B, C, H, W) -> (B, c3 + C, ceil(H/2), ceil(W/2))."""

    def __init__(self, c_in: int, c3: int, bn: bool) -> None:
        super().__init__()
        self.conv = ConvModule(c_in, c3, 3, stride=2, bn=bn)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.c_out = c3 + c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.pool(x)], dim=1)


class InceptionSmall(nn.Module):
    """(B, C, H, W) -> (B, K) logits."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        bn: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.stem = ConvModule(input_shape[0], 96, 3, bn=bn)
        layers: list[nn.Module] = []
        c = 96
        for kind, *args in (
            ("inc", 32, 32), ("inc", 32, 48), ("down", 80),
            ("inc", 112, 48), ("inc", 96, 64), ("inc", 80, 80), ("inc", 48, 96), ("down", 96),
            ("inc", 176, 160), ("inc", 176, 160),
        ):  # fmt: skip
            layer = Inception(c, *args, bn=bn) if kind == "inc" else Downsample(c, *args, bn=bn)
            layers.append(layer)
            c = layer.c_out
        self.body = nn.Sequential(*layers)
        self.drop = dropout_or_identity(dropout)
        self.out = nn.Linear(c, num_classes)
        if not bn:
            _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(x))  # (B, 336, ceil(H/4), ceil(W/4))
        return self.out(self.drop(x.mean(dim=(2, 3))))  # global mean pool -> (B, K)


def _he_init(model: nn.Module) -> None:
    """He (fan-in, ReLU) init for every conv, zero biases.

    Without BatchNorm, torch's default conv init (variance 1/(3 fan_in)) shrinks the signal's
    second moment about 6x per conv module; after the 11 modules of this network the logits
    barely depend on the input and SGD stalls at loss ln(10) (seen on digits at lr 0.1 and
    0.01). He init keeps the scale through ReLUs, so the no-BN variant trains, as the paper's
    did. The BN variant keeps torch's defaults (BN makes it insensitive to the conv scale).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)


@register_model(
    "inception-small",
    default_lr=0.1,
    notes="the paper's small Inception; BatchNorm without scale/shift",
)
def _inception_small(shape: tuple[int, int, int], k: int, dropout: float) -> InceptionSmall:
    return InceptionSmall(shape, k, bn=True, dropout=dropout)


@register_model(
    "inception-small-nobn",
    default_lr=0.1,
    notes="small Inception without BatchNorm (Table 1's 'w/o BatchNorm')",
)
def _inception_small_nobn(shape: tuple[int, int, int], k: int, dropout: float) -> InceptionSmall:
    return InceptionSmall(shape, k, bn=False, dropout=dropout)
