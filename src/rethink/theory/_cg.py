"""Preconditioned conjugate gradients on several right-hand sides, and a Nystrom
preconditioner for kernel matrices.

The preconditioner (Frangella, Tropp and Udell's "Nystrom PCG", with landmark columns):
K is approximated by K_nys = K_nm K_mm^-1 K_mn = U diag(lam) U^T from m random landmarks,
and P^-1 = (lam_r + ridge) U (diag(lam) + ridge)^-1 U^T + (I - U U^T) maps the r largest
eigen-directions of K down to about lam_r while leaving the rest alone, so CG sees a
condition number near lam_r / lam_min instead of lam_max / lam_min. Only the top half of
the Nystrom spectrum is kept: its tail underestimates K's and would over-correct.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rethink.theory.kernels import kernel_block

Operator = Callable[[torch.Tensor], torch.Tensor]


def nystrom_preconditioner(
    x: torch.Tensor, *, kernel: str, gamma: float, ridge: float, rank: int,
    generator: torch.Generator,
) -> Operator:  # fmt: skip
    """P^-1 for K(x, x) + ridge I from `rank` landmarks drawn with `generator`: (n, k) -> (n, k)."""
    n = x.shape[0]
    m = min(rank, n)
    if m < 2:
        return lambda r: r
    idx = torch.randperm(n, generator=generator)[:m]
    xc = x - x.mean(0, keepdim=True) if kernel == "rbf" else x
    knm = kernel_block(xc, xc[idx], kernel=kernel, gamma=gamma)  # (n, m) float64
    kmm = knm[idx]  # (m, m)
    evals, evecs = torch.linalg.eigh(kmm)
    keep = evals > evals.max() * m * torch.finfo(torch.float64).eps
    b = knm @ (evecs[:, keep] / evals[keep].sqrt())  # (n, r'): K_nys = B B^T
    del knm
    u, s, _ = torch.linalg.svd(b, full_matrices=False)
    lam = s**2  # descending
    r = max(1, int(keep.sum()) // 2)
    u, lam = u[:, :r].contiguous(), lam[:r]
    scale = (lam[-1] + ridge) / (lam + ridge)  # (r,)

    def apply(res: torch.Tensor) -> torch.Tensor:
        c = u.T @ res  # (r, k)
        return res + u @ ((scale - 1.0)[:, None] * c)

    return apply


def pcg(
    matvec: Operator, b: torch.Tensor, precond: Operator, *, tol: float, max_iter: int
) -> tuple[torch.Tensor, int]:
    """Solve A X = B for symmetric positive definite A, each column of B (n, k) on its own.

    Stops when every column's recursive residual ||b - A x|| / ||b|| falls below `tol`, or
    after `max_iter` steps. Returns (X, steps).
    """
    x = torch.zeros_like(b)
    r = b.clone()
    bnorm = torch.linalg.norm(b, dim=0).clamp_min(1e-300)
    z = precond(r)
    p = z.clone()
    rz = (r * z).sum(0)
    steps = 0
    while steps < max_iter and (torch.linalg.norm(r, dim=0) / bnorm).max() > tol:
        ap = matvec(p)
        step = rz / (p * ap).sum(0).clamp_min(1e-300)
        x += step * p
        r -= step * ap
        z = precond(r)
        rz_new = (r * z).sum(0)
        p = z + (rz_new / rz.clamp_min(1e-300)) * p
        rz = rz_new
        steps += 1
    return x, steps
