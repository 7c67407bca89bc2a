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


def batchnorm_relu(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """relu(bn(x)) for a BatchNorm2d without scale/shift (affine=False); (B, C, H, W).

    In eager training mode with autograd on, this runs `_BatchNormReLUFunction`: the same
    numbers as `torch.relu(bn(x))` (and the same running-statistics update), but it keeps one
    tensor for backward instead of two and makes fewer passes over memory. Elsewhere (eval,
    no_grad, torch.compile, an affine BatchNorm) it is exactly `torch.relu(bn(x))`.
    """
    if (
        bn.training
        and bn.track_running_stats
        and not bn.affine
        and bn.momentum is not None
        and x.requires_grad
        and torch.is_grad_enabled()
        and x.dim() == 4
        and x.numel() > x.shape[1]  # more than one value per channel
        and not torch.compiler.is_compiling()
    ):
        bn.num_batches_tracked.add_(1)
        return _BatchNormReLUFunction.apply(x, bn.running_mean, bn.running_var, bn.momentum, bn.eps)
    return torch.relu(bn(x))


class _BatchNormReLUFunction(torch.autograd.Function):
    """y = relu(xhat), xhat = (x - mean) * r, r = 1 / sqrt(var + eps), batch statistics over
    (B, H, W) per channel. With gx = g * [xhat > 0] and means over (B, H, W):

        dL/dx = r * (gx - mean(gx) - xhat * mean(gx * xhat)).
    """

    @staticmethod
    def forward(ctx, x, running_mean, running_var, momentum, eps):  # type: ignore[override]
        n = x.numel() // x.shape[1]
        var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)  # (C,), (C,)
        r = torch.rsqrt(var + eps)
        with torch.no_grad():  # PyTorch's update: unbiased variance into running_var
            running_mean.lerp_(mean, momentum)
            running_var.lerp_(var * (n / (n - 1)), momentum)
        shape = (1, -1, 1, 1)
        xhat = torch.addcmul((-mean * r).view(shape), x, r.view(shape))  # one pass
        ctx.save_for_backward(xhat, r)
        return torch.relu(xhat)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        xhat, r = ctx.saved_tensors
        gx = torch.ops.aten.threshold_backward(g, xhat, 0.0)  # g where xhat > 0, else 0
        a = gx.mean(dim=(0, 2, 3))
        b = (gx * xhat).mean(dim=(0, 2, 3))
        shape = (1, -1, 1, 1)
        dx = torch.addcmul((-a * r).view(shape), gx, r.view(shape))
        return dx.addcmul_(xhat, (-b * r).view(shape)), None, None, None, None


def dropout_or_identity(p: float) -> nn.Module:
    """nn.Dropout(p) if p > 0, else nn.Identity (no dropout layer is "absent")."""
    return nn.Dropout(p) if p > 0 else nn.Identity()
