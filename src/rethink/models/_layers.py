"""Layers shared by the model families: local response normalization and dropout."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LocalResponseNorm(nn.Module):
    """Local response normalization across channels, in TensorFlow's parametrisation.

    For x of shape (B, C, H, W):
        out[:, c] = x[:, c] / (bias + alpha * sum_{|d - c| <= depth_radius} x[:, d] ** 2) ** beta
    with channels outside [0, C) counting as zero (TF's `tf.nn.local_response_normalization`;
    the defaults are the TF cifar10 tutorial's). `torch.nn.LocalResponseNorm(size, a, b, k)`
    divides its alpha by the window size, so this equals it with size = 2 * depth_radius + 1,
    alpha = a * size, beta = b, k = bias.

    The window sum is a 1x1 convolution of x**2 with a fixed 0/1 band matrix (C, C): a plain
    matmul over channels that works in any memory format and that autograd differentiates
    with two more matmuls, several times faster on CPU than torch's avg_pool3d formulation.
    """

    def __init__(
        self,
        channels: int,
        depth_radius: int = 4,
        bias: float = 1.0,
        alpha: float = 0.001 / 9.0,
        beta: float = 0.75,
    ) -> None:
        super().__init__()
        self.channels = int(channels)
        self.depth_radius = int(depth_radius)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)
        idx = torch.arange(self.channels)
        near = (idx[:, None] - idx[None, :]).abs() <= self.depth_radius  # (C, C)
        # 0/1 entries are exact in every dtype. Not persistent: a constant stays out of
        # state_dict.
        band = near.float().reshape(self.channels, self.channels, 1, 1)
        self.register_buffer("band", band, persistent=False)

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, depth_radius={self.depth_radius}, bias={self.bias}, "
            f"alpha={self.alpha:.6g}, beta={self.beta}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        sqr_sum = F.conv2d(x * x, self.band)  # window sums of squares, (B, C, H, W)
        return x * (sqr_sum * self.alpha + self.bias).pow(-self.beta)


def dropout_or_identity(p: float) -> nn.Module:
    """nn.Dropout(p) if p > 0, else nn.Identity (no dropout layer is "absent")."""
    return nn.Dropout(p) if p > 0 else nn.Identity()
