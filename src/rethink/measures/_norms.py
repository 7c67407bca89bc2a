"""Size, norm and margin measures of a trained network (docs/measures.md gives each formula).

Every function takes the trained model (eval mode), and where needed its initial weights and
the fixed sample (x (n, C, H, W), y (n,) the labels the run trained on). Products of norms
are returned as logs (sums of logs), so they neither overflow nor underflow.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rethink.measures._layers import Layer, bn_scale, frobenius, norm_21, spectral, weight_layers

MARGIN_PERCENTILE = 10.0  # gamma: this percentile of the sample's logit margins (Jiang et al.)


def size_and_norms(
    model: nn.Module, init_state: dict[str, torch.Tensor], x: torch.Tensor
) -> dict[str, float]:
    """params, frobenius_sum, log_frobenius_product, log_spectral_product, dist_init,
    log_path_norm; plus the layer norms the margin measures reuse (keys starting with _)."""
    layers = weight_layers(model, x[:2])
    fro = [frobenius(lay) for lay in layers]
    spec = [spectral(lay) for lay in layers]
    l21 = [norm_21(lay) for lay in layers]
    dist2 = 0.0
    for name, p in model.named_parameters():
        dist2 += float(((p.detach().double() - init_state[name].double().to(p.device)) ** 2).sum())
    return {
        "params": float(sum(p.numel() for p in model.parameters())),
        "frobenius_sum": float(sum(f * f for f in fro)),
        "log_frobenius_product": _log_prod_sq(fro),
        "log_spectral_product": _log_prod_sq(spec),
        "dist_init": dist2,
        "log_path_norm": log_path_norm(model, tuple(x.shape[1:])),
        "_log_spectral_complexity": log_spectral_complexity(spec, l21),
    }


def _log_prod_sq(norms: list[float]) -> float:
    """log prod_i ||W_i||^2 = 2 sum_i log ||W_i|| (-inf if a layer is all zeros)."""
    return float(sum(2.0 * math.log(n) if n > 0 else -math.inf for n in norms))


def log_spectral_complexity(spec: list[float], l21: list[float]) -> float:
    """log R_A of Bartlett, Foster & Telgarsky (2017), Theorem 1.1, with reference matrices
    M_i = 0 and ReLU (1-Lipschitz) activations:
        R_A = (prod_i ||A_i||_2) * (sum_i ||A_i^T||_{2,1}^{2/3} / ||A_i||_2^{2/3})^{3/2}."""
    if any(s <= 0 for s in spec):
        return -math.inf
    inner = sum((a ** (2.0 / 3.0)) / (s ** (2.0 / 3.0)) for a, s in zip(l21, spec, strict=True))
    return float(sum(math.log(s) for s in spec) + 1.5 * math.log(inner))


class PlainLRN(nn.Module):
    """rethink.models.LocalResponseNorm's formula in plain (twice differentiable) ops."""

    def __init__(self, lrn: nn.Module) -> None:
        super().__init__()
        self.alpha, self.bias, self.beta = lrn.alpha, lrn.bias, lrn.beta
        self.register_buffer("band", lrn.band.clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        s = F.conv2d(x * x, self.band) * self.alpha + self.bias
        return x * s.pow(-self.beta)


class _SquaredBN(nn.Module):
    """Eval-mode BatchNorm y = s x + b as a diagonal layer with squared coefficients."""

    def __init__(self, bn: nn.Module) -> None:
        super().__init__()
        s = bn_scale(bn)
        b = -bn.running_mean.detach().double() * s
        if bn.bias is not None:
            b = b + bn.bias.detach().double()
        self.s2, self.b2 = s * s, b * b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.s2.reshape(shape) + self.b2.reshape(shape)


def log_path_norm(model: nn.Module, in_shape: tuple[int, ...]) -> float:
    """log of the l2 path-norm squared, sum_k f_{w^2}(1)[k] (Neyshabur, Salakhutdinov & Srebro
    2015; Jiang et al. 2020, eq. 44): every parameter squared, the input all ones, the sum of
    the outputs. Biases count as weights from a constant unit. Every activation of the squared
    network is >= 0, so its ReLUs pass everything and, for a network of linear layers and
    ReLUs, the output sum is exactly the sum over input-to-output paths of the product of the
    squared weights on the path. BatchNorm (eval mode) is the diagonal layer s x + b with s
    and b squared; local response normalization is skipped (identity); pooling and residual
    additions act as in the network. Computed in float64."""
    sq = copy.deepcopy(model).double().eval()
    for p in sq.parameters():
        p.data.pow_(2)
    _swap_modules(sq)
    with torch.no_grad():
        out = sq(torch.ones((1, *in_shape), dtype=torch.float64))  # (1, K)
    total = float(out.sum())
    return math.log(total) if total > 0 else -math.inf


def _swap_modules(net: nn.Module) -> None:
    from rethink.models import LocalResponseNorm

    for name, child in list(net.named_children()):
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            setattr(net, name, _SquaredBN(child))
        elif isinstance(child, (LocalResponseNorm, PlainLRN)):
            setattr(net, name, nn.Identity())
        else:
            _swap_modules(child)


@torch.no_grad()
def logit_margins(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(n,) f(x)[y] - max_{j != y} f(x)[j] in eval mode (negative: misclassified)."""
    parts = []
    for i in range(0, len(y), 500):
        z = model(x[i : i + 500]).double()  # (B, K)
        yb = y[i : i + 500]
        true = z.gather(1, yb[:, None]).squeeze(1)
        other = z.scatter(1, yb[:, None], -math.inf).amax(1)
        parts.append(true - other)
    return torch.cat(parts)


def margin_measures(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, norms: dict[str, float]
) -> dict[str, float]:
    """inverse_margin = 1/gamma^2 and the norms over the margin (gamma: the 10th percentile
    of the sample's logit margins). Undefined (NaN) when gamma <= 0."""
    gamma = float(np.percentile(logit_margins(model, x, y).cpu().numpy(), MARGIN_PERCENTILE))
    out = {"_margin": gamma}
    if gamma <= 0:
        nan = float("nan")
        out.update(
            inverse_margin=nan,
            log_spectral_product_over_margin=nan,
            log_frobenius_product_over_margin=nan,
            log_spectral_complexity_over_margin=nan,
        )
        return out
    lg = math.log(gamma)
    out["inverse_margin"] = 1.0 / gamma**2
    out["log_spectral_product_over_margin"] = norms["log_spectral_product"] - 2 * lg
    out["log_frobenius_product_over_margin"] = norms["log_frobenius_product"] - 2 * lg
    out["log_spectral_complexity_over_margin"] = norms["_log_spectral_complexity"] - lg
    return out


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the sample, with autograd (chunks of 500 examples)."""
    total = 0.0
    for i in range(0, len(y), 500):
        total = total + F.cross_entropy(model(x[i : i + 500]), y[i : i + 500], reduction="sum")
    return total / len(y)


__all__ = [
    "MARGIN_PERCENTILE",
    "Layer",
    "PlainLRN",
    "cross_entropy",
    "log_path_norm",
    "log_spectral_complexity",
    "logit_margins",
    "margin_measures",
    "size_and_norms",
]
