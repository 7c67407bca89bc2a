"""Minimum-norm kernel interpolation (Section 5): solve (K + ridge I) alpha = y.

With ridge = 0 and K positive definite, alpha gives the interpolant f(x) = sum_i alpha_i
k(x, x_i) of smallest RKHS norm sqrt(alpha^T K alpha). Three solvers:

- dense: K in float64, built blockwise, Cholesky in place (LDL^T if K is numerically
  indefinite). Memory 8 n^2 bytes: 2.9 GB at n = 20,000.
- cg: K held once in float32 (4 n^2 bytes: 14.4 GB at n = 60,000), conjugate gradients with
  float64 vectors, products accumulated in float64 blocks, and a Nystrom preconditioner
  (see `_nystrom`). Reports iterations and the residual against the stored K.
- svd (the linear kernel's "dense"): K = X X^T = U S^2 U^T from the thin SVD of X in float64,
  O(n d^2); when n > d with ridge 0 K is singular and this gives the minimum-norm
  least-squares solution, whose training error is then reported as it is.

Multi-class targets are one-hot columns of y, solved together.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from rethink.errors import RethinkError
from rethink.theory._cg import nystrom_preconditioner, pcg
from rethink.theory.kernels import (
    check_kernel,
    kernel_matrix,
    kernel_matvec,
    mem_available_bytes,
)

SOLVERS = ("auto", "dense", "cg")
_DENSE_AUTO_MAX_N = 15_000  # beyond this a float64 Cholesky takes minutes on a few cores
_GIB = 2**30
_CG_STRIP = 4096  # columns of K per float32 product in a CG step
_EXACT_CHECK_ROWS = 2000  # rows of K recomputed in float64 to check a CG solution


@dataclass(eq=False)
class KernelFit:
    """A solved kernel system. alpha: (n, k) float64; train_pred = K alpha: (n, k).

    residual: ||(K + ridge I) alpha - y||_F / ||y||_F. rkhs_norm: sqrt(sum_c a_c^T K a_c).
    iterations: CG steps (0 for direct solvers). solver: dense, cg or svd.
    exact_residual: the residual in float64 arithmetic with the exact kernel; for cg (whose
    residual is against the float32 K it stored) measured on `exact_rows` sampled rows.
    """

    x_train: torch.Tensor
    alpha: torch.Tensor
    kernel: str
    gamma: float
    ridge: float
    solver: str
    train_pred: torch.Tensor
    residual: float
    rkhs_norm: float
    iterations: int
    seconds: float
    rank: int | None = None
    exact_residual: float = float("nan")
    exact_rows: int = 0

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) = K(x, x_train) alpha for (m, d) inputs -> (m, k) float64, blockwise."""
        if self.solver == "svd":
            return x.to(torch.float64) @ (self.x_train.T @ self.alpha)  # w = X^T alpha
        return kernel_matvec(x, self.x_train, self.alpha, kernel=self.kernel, gamma=self.gamma)


def memory_needed(n: int, d: int, k: int, solver: str, precond_rank: int = 0) -> int:
    """Bytes a solve needs beyond the data already held: K, factors and work space."""
    work = 512 * 2**20 + 8 * n * (d + 8 * k)
    if solver == "dense":
        return 8 * n * n + work
    if solver == "cg":
        return 4 * n * n + 3 * 8 * n * precond_rank + work
    return 3 * 8 * n * d + work  # svd


def choose_solver(
    n: int, d: int, k: int, *, kernel: str, solver: str, precond_rank: int,
    available: int | None,
) -> str:  # fmt: skip
    """Pick dense/cg/svd for `solver` (auto, dense or cg), or refuse in one sentence."""
    if solver not in SOLVERS:
        raise RethinkError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}.")
    if kernel == "linear" and solver in ("auto", "dense"):
        chosen = "svd"
    elif solver == "auto":
        fits = available is None or memory_needed(n, d, k, "dense") <= available
        chosen = "dense" if n <= _DENSE_AUTO_MAX_N and fits else "cg"
    else:
        chosen = solver
    need = memory_needed(n, d, k, chosen, precond_rank)
    if available is not None and need > available:
        per_point = {"dense": 8, "cg": 4}.get(chosen, 0)
        fit_n = int(np.sqrt(max(available - 2**30, 0) / per_point)) if per_point else 0
        hint = f"--train-size {fit_n // 1000 * 1000} or less" if fit_n >= 1000 else "less data"
        raise RethinkError(
            f"the {chosen} solve of {n:,} points needs about {need / _GIB:.1f} GiB but only "
            f"{available / _GIB:.1f} GiB is available; use {hint}, or a machine with "
            f"{need / _GIB + 1:.0f} GiB free."
        )
    return chosen


def fit_kernel(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    kernel: str = "rbf",
    gamma: float = 0.02,
    ridge: float = 0.0,
    solver: str = "auto",
    tol: float = 1e-6,
    max_iter: int = 1000,
    precond_rank: int = 1000,
    seed: int = 0,
    memory_available: int | None = -1,
    log: Callable[[str], None] | None = None,
) -> KernelFit:
    """Solve (K + ridge I) alpha = y for (n, d) inputs and (n,) or (n, k) float targets.

    tol / max_iter: CG stopping rule on the relative residual. precond_rank: Nystrom
    landmarks for CG (drawn with `seed`). memory_available: bytes the solve may use
    (-1: read MemAvailable; None: do not check). log: receives progress lines.
    """
    start = time.perf_counter()
    check_kernel(kernel, gamma)
    if not (math.isfinite(ridge) and ridge >= 0):
        raise RethinkError(f"ridge must be zero or a finite positive number, got {ridge}.")
    if not (math.isfinite(tol) and tol > 0) or max_iter < 1 or precond_rank < 0:
        raise RethinkError("tol must be a finite positive number, max_iter >= 1 and "
                           "precond_rank >= 0.")  # fmt: skip
    xf = x.reshape(x.shape[0], -1).to(torch.float64)
    yf = torch.as_tensor(y, dtype=torch.float64).reshape(xf.shape[0], -1)
    if xf.shape[0] < 1 or not torch.isfinite(xf).all() or not torch.isfinite(yf).all():
        raise RethinkError("kernel inputs must be non-empty and finite.")
    n, d = xf.shape
    avail = mem_available_bytes() if memory_available == -1 else memory_available
    rank = min(precond_rank, max(n // 2, 1))
    chosen = choose_solver(
        n, d, yf.shape[1], kernel=kernel, solver=solver, precond_rank=rank, available=avail
    )
    if chosen == "cg" and kernel == "linear" and ridge == 0 and n > d:
        raise RethinkError(
            f"the linear kernel's K has rank at most d = {d} < n = {n}, so K alpha = y has no "
            "exact solution; use --solver dense (minimum-norm least squares) or --ridge > 0."
        )
    iters, svd_rank = 0, None
    if chosen == "svd":
        alpha, kalpha, svd_rank = _solve_svd(xf, yf, ridge)
    elif chosen == "dense":
        alpha, kalpha = _solve_dense(xf, yf, kernel, gamma, ridge)
    else:
        alpha, kalpha, iters = _solve_cg(
            xf, yf, kernel, gamma, ridge, tol, max_iter, rank, seed, log or (lambda s: None)
        )
    res = _relative(kalpha + ridge * alpha - yf, yf)
    exact, rows = res, n
    if chosen == "cg":  # float64 kernel rows for a sample: what the float32 K cost
        gen = torch.Generator().manual_seed(seed + 1)
        idx = torch.randperm(n, generator=gen)[: min(n, _EXACT_CHECK_ROWS)]
        k_alpha = kernel_matvec(xf[idx], xf, alpha, kernel=kernel, gamma=gamma)
        exact, rows = _relative(k_alpha + ridge * alpha[idx] - yf[idx], yf[idx]), len(idx)
    norm2 = float((alpha * kalpha).sum())
    return KernelFit(
        x_train=xf, alpha=alpha, kernel=kernel, gamma=gamma, ridge=ridge, solver=chosen,
        train_pred=kalpha, residual=float(res), rkhs_norm=float(np.sqrt(max(norm2, 0.0))),
        iterations=iters, seconds=time.perf_counter() - start, rank=svd_rank,
        exact_residual=exact, exact_rows=rows,
    )  # fmt: skip


def _relative(r: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.linalg.norm(r) / torch.linalg.norm(y).clamp_min(1e-300))


def _solve_dense(x, y, kernel, gamma, ridge):
    import scipy.linalg as sl

    k = kernel_matrix(x, kernel=kernel, gamma=gamma).numpy()  # (n, n) float64
    k[np.diag_indices_from(k)] += ridge
    try:
        factor = sl.cho_factor(k, lower=True, overwrite_a=True, check_finite=False)
        alpha = sl.cho_solve(factor, y.numpy(), check_finite=False)
    except np.linalg.LinAlgError:  # numerically indefinite: symmetric-indefinite LDL^T
        k = kernel_matrix(x, kernel=kernel, gamma=gamma).numpy()
        k[np.diag_indices_from(k)] += ridge
        alpha = sl.solve(k, y.numpy(), assume_a="sym", overwrite_a=True, check_finite=False)
    del k
    alpha_t = torch.from_numpy(np.ascontiguousarray(alpha))
    # K alpha recomputed blockwise in float64: the residual checks the solve independently.
    return alpha_t, kernel_matvec(x, x, alpha_t, kernel=kernel, gamma=gamma)


def _solve_svd(x, y, ridge):
    u, s, _ = torch.linalg.svd(x, full_matrices=False)  # x = U S V^T, K = U S^2 U^T
    keep = s > s.max() * max(x.shape) * torch.finfo(torch.float64).eps
    u, lam = u[:, keep], s[keep] ** 2
    uty = u.T @ y  # (r, k)
    alpha = u @ (uty / (lam + ridge)[:, None])
    if ridge > 0:  # the part of y outside the range of K is fitted by the ridge alone
        alpha = alpha + (y - u @ uty) / ridge
    kalpha = x @ (x.T @ alpha)
    return alpha, kalpha, int(keep.sum())


def _solve_cg(x, y, kernel, gamma, ridge, tol, max_iter, rank, seed, log):
    t0 = time.perf_counter()
    k32 = kernel_matrix(x, kernel=kernel, gamma=gamma, dtype=torch.float32)  # (n, n)
    log(f"float32 kernel matrix {tuple(k32.shape)} built in {time.perf_counter() - t0:.0f} s")

    def matvec(v: torch.Tensor) -> torch.Tensor:  # (n, k) float64 -> K v
        # float32 products over column strips of K, summed in float64 across strips.
        out = torch.zeros_like(v)
        v32 = v.to(torch.float32)
        for j in range(0, k32.shape[1], _CG_STRIP):
            out += (k32[:, j : j + _CG_STRIP] @ v32[j : j + _CG_STRIP]).double()
        return out

    gen = torch.Generator().manual_seed(seed)
    precond = nystrom_preconditioner(x, kernel=kernel, gamma=gamma, ridge=ridge, rank=rank,
                                     generator=gen)  # fmt: skip
    log(f"Nystrom preconditioner ({rank} landmarks) ready at {time.perf_counter() - t0:.0f} s")
    alpha, iters, _ = pcg(
        lambda v: matvec(v) + ridge * v, y, precond, tol=tol, max_iter=max_iter, log=log
    )
    kalpha = matvec(alpha)
    return alpha, kalpha, iters


def available_gib() -> float | None:
    """MemAvailable in GiB (None where unknown), for messages and reports."""
    b = mem_available_bytes()
    return None if b is None else b / _GIB
