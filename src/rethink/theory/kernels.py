"""Kernels for Section 5, computed blockwise so no temporary exceeds a fixed budget.

rbf:    k(x, x') = exp(-gamma ||x - x'||^2)   (pixels in [0, 1]; the paper's gamma = 0.02)
linear: k(x, x') = <x, x'>

Inputs are (n, d) float tensors; outputs take the dtype asked for. Squared distances come
from ||x||^2 + ||x'||^2 - 2 <x, x'> after centring both sets on the mean of the first, which
keeps the cancellation small when pixels are all positive (rbf only: the linear kernel is
not translation invariant).
"""

from __future__ import annotations

import math
import os
import resource

import torch

from rethink.errors import RethinkError

KERNELS = ("rbf", "linear")
_BLOCK_BYTES = 128 * 2**20  # largest temporary a blockwise loop allocates


def check_kernel(kernel: str, gamma: float) -> None:
    """Raise a RethinkError for an unknown kernel or a gamma that is not finite and positive."""
    if kernel not in KERNELS:
        raise RethinkError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}.")
    if kernel == "rbf" and not (math.isfinite(gamma) and gamma > 0):
        raise RethinkError(f"gamma must be positive for the rbf kernel, got {gamma}.")


def kernel_block(
    xa: torch.Tensor,
    xb: torch.Tensor,
    *,
    kernel: str,
    gamma: float,
    sq_a: torch.Tensor | None = None,
    sq_b: torch.Tensor | None = None,
) -> torch.Tensor:
    """k(xa, xb): (ma, d), (mb, d) -> (ma, mb) in xa's dtype. sq_*: precomputed ||x||^2."""
    g = xa @ xb.T  # (ma, mb)
    if kernel == "linear":
        return g
    sq_a = (xa * xa).sum(1) if sq_a is None else sq_a
    sq_b = (xb * xb).sum(1) if sq_b is None else sq_b
    g.mul_(-2.0).add_(sq_a[:, None]).add_(sq_b[None, :]).clamp_(min=0.0)  # ||xa - xb||^2
    return g.mul_(-gamma).exp_()


def kernel_matrix(
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    kernel: str = "rbf",
    gamma: float = 0.02,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """K(x, y) (y defaults to x) as an (n, m) tensor of `dtype`, built in row blocks."""
    check_kernel(kernel, gamma)
    y = x if y is None else y
    xc, yc = _centred(x, y, kernel, dtype)
    out = torch.empty(xc.shape[0], yc.shape[0], dtype=dtype)
    sq_y = (yc * yc).sum(1)
    rows = _rows_per_block(yc.shape[0], out.element_size())
    for i in range(0, xc.shape[0], rows):
        xb = xc[i : i + rows]
        out[i : i + rows] = kernel_block(xb, yc, kernel=kernel, gamma=gamma, sq_b=sq_y)
    return out


def kernel_matvec(
    x: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    *,
    kernel: str,
    gamma: float,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """K(x, y) @ v without storing K: (m, d), (n, d), (n, k) -> (m, k) float64."""
    xc, yc = _centred(x, y, kernel, dtype)
    sq_y = (yc * yc).sum(1)
    vv = v.to(dtype)
    out = torch.empty(xc.shape[0], v.shape[1], dtype=torch.float64)
    rows = _rows_per_block(yc.shape[0], xc.element_size())
    for i in range(0, xc.shape[0], rows):
        kb = kernel_block(xc[i : i + rows], yc, kernel=kernel, gamma=gamma, sq_b=sq_y)
        out[i : i + rows] = (kb @ vv).double()
    return out


def _centred(x: torch.Tensor, y: torch.Tensor, kernel: str, dtype: torch.dtype):
    # Only the rbf kernel is translation invariant; the linear one is used as given.
    if kernel != "rbf":
        return x.to(dtype), y.to(dtype)
    x64, y64 = x.to(torch.float64), y.to(torch.float64)
    mean = x64.mean(0, keepdim=True)
    return (x64 - mean).to(dtype), (y64 - mean).to(dtype)


def _rows_per_block(cols: int, itemsize: int) -> int:
    return max(1, _BLOCK_BYTES // max(1, cols * itemsize))


def mem_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo in bytes, or None where there is no such file."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes (Linux ru_maxrss is in KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if os.uname().sysname == "Darwin" else int(peak) * 1024
