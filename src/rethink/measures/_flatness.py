"""Flatness and gradient measures: how the training loss responds to changes of the weights.

All of them evaluate the model in eval mode (BatchNorm uses its running statistics, dropout
is off) on the fixed sample (x (n, ...), y (n,): the labels the run trained on), and draw
their randomness from an explicit `torch.Generator`. Weights are perturbed in place and
restored exactly (a saved copy) before each function returns.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from rethink.measures._norms import cross_entropy

PACBAYES_DEVIATION = 0.1  # allowed rise of the training error (a fraction) under weight noise
PACBAYES_DRAWS = 8  # Monte-Carlo draws of the noise per sigma
PACBAYES_MAG_EPS = 1e-3  # the magnitude-aware noise's floor (Jiang et al.: epsilon = 1e-3)
BISECTION_STEPS = 8  # halvings of the bracket [lo, 2 lo] on a log scale (0.3% at the end)
SHARPNESS_EPS = 1e-3  # Keskar et al.'s box: |u_i| <= eps (|w_i| + 1)
SHARPNESS_STEPS = 10  # projected sign-gradient ascent steps inside the box
HESSIAN_ITERS = 20  # power iterations for the top eigenvalue
HUTCHINSON_PROBES = 10  # Rademacher probes for the trace
GRAD_NOISE_BATCHES = 64  # mini-batches for the gradient variance


def _params(model: nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


@contextmanager
def _restored(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    params = _params(model)
    saved = [p.detach().clone() for p in params]
    try:
        yield saved
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)


@torch.no_grad()
def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of the sample misclassified (eval mode)."""
    wrong = 0
    for i in range(0, len(y), 500):
        wrong += int((model(x[i : i + 500]).argmax(1) != y[i : i + 500]).sum())
    return wrong / len(y)


def pacbayes_sigma(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    generator: torch.Generator,
    magnitude: bool = False,
    deviation: float = PACBAYES_DEVIATION,
    draws: int = PACBAYES_DRAWS,
    steps: int = BISECTION_STEPS,
) -> float:
    """The largest sigma with mean_u err(w + u) - err(w) <= deviation, by bisection.

    u ~ N(0, sigma^2 I) (Jiang et al. 2020, "pacbayes-flatness", after Dziugaite & Roy 2017),
    or with magnitude=True u_i ~ N(0, sigma^2 w_i^2 + eps^2) ("pacbayes-mag-flatness"). The
    mean is over `draws` noise draws z_1..z_M fixed once (u = sigma z, common random numbers),
    so the estimated deviation changes with sigma only through sigma. The bracket starts at
    [0, 1] and doubles (up to 2^20) until the deviation is exceeded; the bisection is on a
    log scale; the lower end of the final bracket is returned."""
    base = error_rate(model, x, y)
    with _restored(model) as saved:
        params = _params(model)
        z = [
            [torch.randn(p.shape, generator=generator).to(p) for p in params] for _ in range(draws)
        ]

        def too_noisy(sigma: float) -> bool:
            total = 0.0
            for zs in z:
                with torch.no_grad():
                    for p, w, zi in zip(params, saved, zs, strict=True):
                        if magnitude:
                            std = torch.sqrt((sigma * w) ** 2 + PACBAYES_MAG_EPS**2)
                            p.copy_(w + std * zi)
                        else:
                            p.copy_(w + sigma * zi)
                total += error_rate(model, x, y)
            return total / draws - base > deviation

        hi = 1.0
        while not too_noisy(hi):
            hi *= 2.0
            if hi > 2.0**20:
                return hi
        lo = hi / 2.0
        while lo > 1e-12 and too_noisy(lo):
            hi, lo = lo, lo / 2.0
        for _ in range(steps):
            mid = math.sqrt(lo * hi)
            if too_noisy(mid):
                hi = mid
            else:
                lo = mid
        return lo


def sharpness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float = SHARPNESS_EPS,
    steps: int = SHARPNESS_STEPS,
) -> float:
    """Keskar et al. (2017)'s sharpness, in percent:
        100 * (max_{u in C} L(w + u) - L(w)) / (1 + L(w)),  C = {u : |u_i| <= eps (|w_i| + 1)},
    L the sample's mean cross-entropy. The max is approximated by `steps` projected
    sign-gradient ascent steps of size 2.5 * box / steps from u = 0 (the largest loss seen)."""
    with _restored(model) as saved:
        params = _params(model)
        box = [eps * (w.abs() + 1.0) for w in saved]
        with torch.no_grad():
            base = float(cross_entropy(model, x, y))
        best = base
        for _ in range(steps):
            loss = cross_entropy(model, x, y)
            grads = torch.autograd.grad(loss, params)
            best = max(best, float(loss.detach()))
            with torch.no_grad():
                for p, w, b, g in zip(params, saved, box, grads, strict=True):
                    u = (p - w + 2.5 * b / steps * g.sign()).clamp(-b, b)
                    p.copy_(w + u)
        with torch.no_grad():
            best = max(best, float(cross_entropy(model, x, y)))
    return 100.0 * (best - base) / (1.0 + base)


def _hvp(model: nn.Module, x: torch.Tensor, y: torch.Tensor, vs: list[torch.Tensor]):
    """H v for the Hessian H of the sample's mean cross-entropy (summed over chunks of 250)."""
    params = _params(model)
    out = [torch.zeros_like(p) for p in params]
    n = len(y)
    for i in range(0, n, 250):
        xb, yb = x[i : i + 250], y[i : i + 250]
        loss = torch.nn.functional.cross_entropy(model(xb), yb, reduction="sum") / n
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(grads, vs, strict=True))
        hv = torch.autograd.grad(dot, params)
        for o, h in zip(out, hv, strict=True):
            o += h.detach()
    return out


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return float(sum((u.double() * v.double()).sum() for u, v in zip(a, b, strict=True)))


def hessian_top_eigenvalue(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    generator: torch.Generator,
    iters: int = HESSIAN_ITERS,
) -> float:
    """The largest-magnitude eigenvalue of the training-loss Hessian (mean cross-entropy on
    the sample), by power iteration with Hessian-vector products (double backprop); returns
    the Rayleigh quotient v^T H v of the last unit vector."""
    params = _params(model)
    v = [torch.randn(p.shape, generator=generator).to(p) for p in params]
    norm = math.sqrt(_dot(v, v))
    v = [t / norm for t in v]
    eig = 0.0
    for _ in range(iters):
        hv = _hvp(model, x, y, v)
        eig = _dot(v, hv)
        norm = math.sqrt(_dot(hv, hv))
        if norm == 0.0:
            return 0.0
        v = [t / norm for t in hv]
    return eig


def hessian_trace(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    generator: torch.Generator,
    probes: int = HUTCHINSON_PROBES,
) -> float:
    """Hutchinson's estimate of tr H: the mean of v^T H v over Rademacher vectors v."""
    params = _params(model)
    total = 0.0
    for _ in range(probes):
        v = [(torch.randint(0, 2, p.shape, generator=generator) * 2 - 1).to(p) for p in params]
        total += _dot(v, _hvp(model, x, y, v))
    return total / probes


def gradient_noise(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    generator: torch.Generator,
    batches: int = GRAD_NOISE_BATCHES,
) -> float:
    """E_B ||g_B - g||^2: the mean squared distance of the mini-batch gradients g_B (the run's
    batch size, each batch drawn without replacement from the sample) from the full-sample
    gradient g, of the mean cross-entropy at the final weights: the trace of the mini-batch
    gradient covariance."""
    params = _params(model)
    full = [g.detach() for g in torch.autograd.grad(cross_entropy(model, x, y), params)]
    b = min(batch_size, len(y))
    total = 0.0
    for _ in range(batches):
        idx = torch.randperm(len(y), generator=generator)[:b].to(x.device)
        grads = torch.autograd.grad(cross_entropy(model, x[idx], y[idx]), params)
        total += sum(float(((g - f) ** 2).sum()) for g, f in zip(grads, full, strict=True))
    return total / batches
