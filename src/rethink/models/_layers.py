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

    The window sum is a 1x1 convolution of x**2 with a fixed 0/1 band matrix (C, C) (a matmul
    over channels, in any memory format), and the gradient is written out by hand
    (`_LRNFunction`): a handful of elementwise passes instead of the dozen that autograd
    records for torch's avg_pool3d formulation, and no second `pow`.
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
        if torch.compiler.is_compiling():
            # Plain ops: the compiler differentiates and fuses them itself.
            sqr_sum = F.conv2d(x * x, self.band)
            return x * (sqr_sum * self.alpha + self.bias).pow(-self.beta)
        return _LRNFunction.apply(x, self.band, self.alpha, self.bias, self.beta)


class _LRNFunction(torch.autograd.Function):
    """y = x * s^-beta with s = bias + alpha * W(x^2), W the symmetric band sum over channels.

    dL/dx = g * s^-beta - 2 alpha beta * x * W(g * y / s).
    """

    @staticmethod
    def forward(ctx, x, band, alpha, bias, beta):  # type: ignore[override]
        s = F.conv2d(x * x, band).mul_(alpha).add_(bias)  # (B, C, H, W), >= bias > 0
        if beta == 0.75:  # s^-3/4 = rsqrt(s) * sqrt(rsqrt(s)): twice as fast as pow on CPU
            p = torch.rsqrt(s)
            p.mul_(p.sqrt())
        else:
            p = s.pow(-beta)
        ctx.save_for_backward(x, band, s, p)
        ctx.coef = -2.0 * alpha * beta
        return x * p

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        x, band, s, p = ctx.saved_tensors
        gp = g * p  # g * s^-beta
        t = (gp * x).div_(s)  # g * y / s
        w = F.conv2d(t, band)  # W is symmetric: W^T = W
        return gp.addcmul_(x, w, value=ctx.coef), None, None, None, None


def dropout_or_identity(p: float) -> nn.Module:
    """nn.Dropout(p) if p > 0, else nn.Identity (no dropout layer is "absent")."""
    return nn.Dropout(p) if p > 0 else nn.Identity()
