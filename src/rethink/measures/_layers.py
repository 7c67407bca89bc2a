"""A trained network as a list of weight layers, with BatchNorm folded where it can be.

`weight_layers(model, x)` runs one eval-mode forward pass on `x` (a couple of examples) with
hooks on every Conv2d, Linear and BatchNorm module, and returns one `Layer` per weight
matrix in the order they ran:

- a Conv2d or Linear whose output goes straight into a BatchNorm (inception-small's
  conv -> BN -> ReLU) is folded with it: in eval mode BN is y = s * x + b per channel with
  s = gamma / sqrt(running_var + eps) (gamma = 1 without affine), so the layer's weight
  becomes W' = diag(s) W (its bias b' = s * bias + b does not enter the norm measures);
- a BatchNorm that follows anything else (the pre-activation ResNet's BN -> ReLU -> conv, or a
  BN after a residual sum) is a layer of its own, the diagonal map diag(s): its spectral
  norm is max |s|, its Frobenius norm ||s||_2 (one scale per channel, as a 1x1 diagonal conv).

Each layer keeps the input shape it saw, so a convolution's spectral norm is the true
operator norm of the linear map it computes on that input (padding and stride included),
found by power iteration with the conv and its adjoint (`conv_operator_norm`); a Linear's is
its largest singular value.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class Layer:
    """One weight layer. weight: Linear (out, in), Conv2d (out, in/groups, kh, kw) or, for a
    standalone BatchNorm, the (C,) diagonal. in_shape: the (C, H, W) or (F,) input it saw."""

    name: str
    kind: str  # "linear" | "conv" | "diag"
    weight: torch.Tensor
    in_shape: tuple[int, ...]
    module: nn.Module | None = None  # the Conv2d (for stride / padding), else None


def bn_scale(bn: nn.Module) -> torch.Tensor:
    """(C,) the eval-mode BatchNorm scale s = gamma / sqrt(running_var + eps)."""
    s = torch.rsqrt(bn.running_var.detach().double() + bn.eps)
    if bn.weight is not None:
        s = s * bn.weight.detach().double()
    return s


def weight_layers(model: nn.Module, x: torch.Tensor) -> list[Layer]:
    """Weight layers of `model` in forward order, BatchNorm folded (module docstring).
    `x`: (B, C, H, W), a few examples (only shapes and data flow matter)."""
    names = {m: n for n, m in model.named_modules()}
    calls: list[tuple[nn.Module, tuple, torch.Tensor, torch.Tensor]] = []

    def hook(module, inputs, output):
        calls.append((module, tuple(inputs[0].shape[1:]), inputs[0], output))

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear, *_BN))
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    # the BatchNorm (if any) that consumed each weight layer's output tensor directly
    outputs = {id(out) for m, _, _, out in calls if not isinstance(m, _BN)}
    consumer = {id(inp): m for m, _, inp, _ in calls if isinstance(m, _BN) and id(inp) in outputs}
    layers: list[Layer] = []
    for m, shape, inp, out in calls:
        if isinstance(m, _BN):
            if id(inp) not in outputs:  # not folded: a diagonal layer of its own
                layers.append(Layer(names[m], "diag", bn_scale(m), shape))
            continue
        w = m.weight.detach().double()
        bn = consumer.get(id(out))
        if bn is not None:
            s = bn_scale(bn)
            w = w * s.reshape(-1, *([1] * (w.dim() - 1)))
        kind = "conv" if isinstance(m, nn.Conv2d) else "linear"
        layers.append(Layer(names[m], kind, w, shape, m if kind == "conv" else None))
    return layers


def frobenius(layer: Layer) -> float:
    """||W||_F (the diagonal's l2 norm for a standalone BatchNorm)."""
    return float(torch.linalg.vector_norm(layer.weight))


def spectral(layer: Layer, *, iters: int = 100, tol: float = 1e-7) -> float:
    """||W||_2: largest singular value of a Linear, the conv's operator norm on its input
    shape (power iteration), max |s| of a diagonal."""
    if layer.kind == "diag":
        return float(layer.weight.abs().max())
    if layer.kind == "linear":
        return float(torch.linalg.matrix_norm(layer.weight, ord=2))
    return conv_operator_norm(layer.weight, layer.module, layer.in_shape, iters=iters, tol=tol)


def conv_operator_norm(
    weight: torch.Tensor,
    conv: nn.Conv2d,
    in_shape: tuple[int, ...],
    *,
    iters: int = 100,
    tol: float = 1e-7,
    seed: int = 0,
) -> float:
    """Largest singular value of v -> conv2d(v, weight) (no bias) on inputs of shape
    (1, *in_shape), by power iteration on A^T A; the adjoint A^T is the conv's gradient."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn((1, *in_shape), generator=g, dtype=torch.float64)
    v /= torch.linalg.vector_norm(v)
    w = weight.detach().double()

    def apply(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)

    sigma = 0.0
    for _ in range(iters):
        v = v.detach().requires_grad_(True)
        u = apply(v)  # (1, C_out, H', W')
        (adj,) = torch.autograd.grad(u, v, grad_outputs=u.detach())  # A^T A v
        norm = float(torch.linalg.vector_norm(adj))
        if norm == 0.0:
            return 0.0
        new = norm**0.5  # ||A^T A v|| -> sigma^2 as v converges
        v = adj.detach() / norm
        if abs(new - sigma) <= tol * max(new, 1e-300):
            sigma = new
            break
        sigma = new
    with torch.no_grad():
        return float(torch.linalg.vector_norm(apply(v)))  # ||A v|| for the unit top vector


def norm_21(layer: Layer) -> float:
    """||W^T||_{2,1} of Bartlett et al. (2017): the sum over output units of the l2 norm of
    their incoming weights (a conv's kernel reshaped to (out, in * kh * kw))."""
    if layer.kind == "diag":
        return float(layer.weight.abs().sum())
    w = layer.weight.reshape(layer.weight.shape[0], -1)
    return float(torch.linalg.vector_norm(w, dim=1).sum())
