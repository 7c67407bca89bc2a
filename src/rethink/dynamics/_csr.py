"""Critical sample ratio (Arpit et al., "A closer look at memorization in deep networks",
ICML 2017, Section 3.4).

A data point x is *critical* if the network's prediction changes somewhere in the L-infinity
ball of radius r around it: there is an x' with ||x' - x||_inf <= r and argmax f(x') !=
argmax f(x). The critical sample ratio (CSR) is the share of critical points in a sample.
Arpit et al. find that it rises as a network fits noise (a more complex decision surface).

Search (Arpit et al.'s Langevin adversarial sample search, LASS): with k = argmax f(x), start
at x' = x (or, with random_start, uniformly in the ball), then `steps` times

    x' <- clip(x' + step_size * sign(grad_x' CE(f(x'), k)) + noise * eta,  x - r, x + r)

with eta ~ N(0, 1) per coordinate from `generator`: sign-gradient ascent on the loss of the
predicted class plus Gaussian exploration, projected back into the ball. A point is critical
if any iterate's prediction differs from k. Defaults follow the proportions of the authors'
code (step 0.25, noise 0.2, radius 0.3, in units of 1/255 of the pixel range): step_size =
5/6 r and noise = 2/3 r. The search finds adversarial points, it cannot prove there are none,
so the CSR is a lower bound of the true share. The radius is in the model's input units
(after preprocessing); `pixel_radius` converts a radius in [0, 1] pixel units.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

CSR_SAMPLE_SIZE = 200  # points per split (train, test)
CSR_PIXEL_RADIUS = 2 / 255  # default radius in [0, 1] pixel units; see docs/dynamics.md
CSR_STEPS = 20


def critical_samples(
    model: nn.Module,
    x: torch.Tensor,
    *,
    radius: float,
    steps: int = CSR_STEPS,
    step_size: float | None = None,
    noise: float | None = None,
    generator: torch.Generator,
    random_start: bool = False,
    batch_size: int = 500,
) -> torch.Tensor:
    """(N,) bool: which points of x (N, ...) are critical at L-inf radius `radius`. The model
    is evaluated in eval mode (restored afterwards); its parameters get no gradients. The
    generator is a CPU torch.Generator (noise is drawn on the CPU and moved to x's device)."""
    if radius <= 0 or steps < 1:
        raise ValueError("radius must be positive and steps at least 1")
    step_size = 5.0 / 6.0 * radius if step_size is None else float(step_size)
    noise = 2.0 / 3.0 * radius if noise is None else float(noise)
    was_training = model.training
    model.eval()
    try:
        out = [
            _search(model, xb, radius, steps, step_size, noise, generator, random_start)
            for xb in x.split(batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def _search(model, x, radius, steps, step_size, noise, generator, random_start) -> torch.Tensor:
    with torch.no_grad():
        k = model(x).argmax(dim=1)  # (B,) the prediction to move away from
    lo, hi = x - radius, x + radius
    xa = x.clone()
    if random_start:
        u = torch.rand(x.shape, generator=generator).to(x.device, x.dtype)
        xa = lo + (hi - lo) * u
    critical = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    with torch.no_grad():
        critical |= model(xa).argmax(dim=1) != k
    for _ in range(steps):
        if bool(critical.all()):
            break
        xa.requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(xa), k, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            step = step_size * grad.sign()
            if noise > 0:
                step += noise * torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
            xa = torch.maximum(torch.minimum(xa.detach() + step, hi), lo)
            critical |= model(xa).argmax(dim=1) != k
    return critical.cpu()


def critical_sample_ratio(
    model: nn.Module,
    x: torch.Tensor,
    *,
    radius: float,
    steps: int = CSR_STEPS,
    step_size: float | None = None,
    noise: float | None = None,
    generator: torch.Generator,
    random_start: bool = False,
) -> float:
    """The share of points of x (N, ...) that are critical (see the module docstring)."""
    mask = critical_samples(
        model,
        x,
        radius=radius,
        steps=steps,
        step_size=step_size,
        noise=noise,
        generator=generator,
        random_start=random_start,
    )
    return float(mask.float().mean()) if len(mask) else float("nan")


def pixel_radius(radius_01: float, x_unit: torch.Tensor, x_model: torch.Tensor) -> float:
    """A radius given in [0, 1] pixel units, in the model's input units: radius_01 times the
    median ratio of preprocessed to raw spread (std over each image of x_model / x_unit).
    x_unit: raw images scaled to [0, 1]; x_model: the same images after preprocessing."""
    a = x_unit.flatten(1).float().std(dim=1)
    b = x_model.flatten(1).float().std(dim=1)
    ok = a > 1e-8
    return float(radius_01 * (b[ok] / a[ok]).median()) if bool(ok.any()) else float(radius_01)


def csr_epochs(max_epochs: int) -> list[int]:
    """The epochs to measure CSR at: 0, 1, 2, 4, 8, ... up to max_epochs, and max_epochs
    itself. A run that stops earlier (until_fit) should also measure at its last epoch."""
    out, e = [0], 1
    while e < max_epochs:
        out.append(e)
        e *= 2
    if max_epochs > 0:
        out.append(int(max_epochs))
    return out


def csr_sample(
    n_train: int, n_test: int, *, size: int = CSR_SAMPLE_SIZE, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed sample of `size` training and `size` test indices (fewer if a split is
    smaller), the same for every run on the same data, drawn from a generator seeded by
    `seed` (not the run's seed, so runs compare on the same points)."""
    digest = hashlib.sha256(f"{int(seed)}:csr-sample".encode()).digest()
    g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") >> 1)
    train = torch.randperm(n_train, generator=g)[: min(size, n_train)].sort().values
    test = torch.randperm(n_test, generator=g)[: min(size, n_test)].sort().values
    return train, test


def csr_metrics(
    model: nn.Module,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    *,
    sample: tuple[torch.Tensor, torch.Tensor],
    radius: float,
    steps: int = CSR_STEPS,
    epoch: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """{"csr_train", "csr_test"} on the sample's points (from csr_sample). The search noise
    comes from a generator seeded by (seed, epoch), so a resumed run measures the same."""
    digest = hashlib.sha256(f"{int(seed)}:{int(epoch)}:csr-search".encode()).digest()
    g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") >> 1)
    tr, te = sample
    dev = x_train.device
    return {
        "csr_train": critical_sample_ratio(
            model, x_train[tr.to(dev)], radius=radius, steps=steps, generator=g
        ),
        "csr_test": critical_sample_ratio(
            model, x_test[te.to(x_test.device)], radius=radius, steps=steps, generator=g
        ),
    }
