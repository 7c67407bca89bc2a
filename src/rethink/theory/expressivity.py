"""Theorem 1 made executable: a two-layer ReLU network that fits any n points exactly.

Zhang et al. (Section 4): for n distinct points z_i in R^d and any targets y_i, the network
c(x) = sum_j w_j max(<a, x> - b_j, 0) with 2n + d weights interpolates them. Pick a direction
a so that the projections x_i = <a, z_i> are distinct, sort them, interleave biases
b_1 < x_1 < b_2 < x_2 < ... < b_n < x_n, and solve A w = y with A_ij = max(x_i - b_j, 0),
a lower-triangular matrix with positive diagonal.

How it is solved here (O(n) after an O(n log n) sort, never an n x n matrix): c is piecewise
linear with kinks at the b_j, so row i of A w = y only says how c climbs from x_{i-1} to x_i.
With the bias placed a fraction theta of the way through each gap, b_i = x_{i-1} + theta g_i
(g_i = x_i - x_{i-1}), and S_i = w_1 + ... + w_i the slope just right of b_i:

    y_i - y_{i-1} = theta g_i S_{i-1} + (1 - theta) g_i S_i
    =>  S_i = (y_i - y_{i-1}) / ((1 - theta) g_i) - theta / (1 - theta) * S_{i-1}

a first-order linear recurrence (one `scipy.signal.lfilter` call, vectorised over outputs),
then w = diff(S). The factor theta / (1 - theta) decides stability: below 1/2 for theta < 1/2
errors shrink as they travel; theta = 1/2 (midpoint biases) lets slopes random-walk, and
theta > 1/2 makes them grow geometrically. Default theta = 1/4. Everything is float64: with
n = 60,000 images the smallest gap between projections is ~1e-9 of their range, so slopes
reach ~1e9 and float32 would lose the fit entirely.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.signal import lfilter

from rethink.errors import RethinkError

_EPS64 = float(np.finfo(np.float64).eps)
_BLOCK_ROWS = 65_536  # rows of the (n, d) points handled at once by the tie check


@dataclass(frozen=True, eq=False)
class ExpressivityFit:
    """The solved construction. Arrays are float64 and indexed in sorted-projection order.

    a: (d,) unit direction. b: (n,) biases, increasing. w: (n, k) output weights.
    x_sorted: (n,) projections <a, z> sorted; y_sorted: (n, k) their targets;
    slopes: (n, k) S = cumsum(w); order: (n,) int64, order[i] = original index of the
    point with the i-th smallest projection. min_gap: smallest x_{i} - x_{i-1};
    min_diagonal: smallest A_ii = x_i - b_i (A is triangular, so this is its smallest
    eigenvalue). attempts: directions drawn; seconds: wall time of the fit.
    """

    a: np.ndarray
    b: np.ndarray
    w: np.ndarray
    x_sorted: np.ndarray
    y_sorted: np.ndarray
    slopes: np.ndarray
    order: np.ndarray
    theta: float
    min_gap: float
    min_diagonal: float
    attempts: int
    seconds: float
    scalar_targets: bool = field(default=False)

    @property
    def n(self) -> int:
        return int(self.b.shape[0])

    @property
    def d(self) -> int:
        return int(self.a.shape[0])

    @property
    def outputs(self) -> int:
        return int(self.w.shape[1])

    @property
    def num_params(self) -> int:
        """d + n + n * outputs: a, b and w (2n + d for one output)."""
        return self.d + self.n + self.n * self.outputs

    def module(self, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
        """The network as an ordinary torch module (keep float64: see the module docstring)."""
        from rethink.theory.network import TwoLayerReLU

        return TwoLayerReLU(self.a, self.b, self.w, dtype=dtype)

    def predict(self, points: np.ndarray | torch.Tensor) -> np.ndarray:
        """Evaluate c at (m, d) points in O(m log n) via the piecewise-linear form -> (m, k).

        Same function as `module()(points)` up to float64 rounding, but never forms the
        (m, n) hidden layer, so it serves n = 10^6.
        """
        z = _as_float64(points, "points")
        z = z.reshape(z.shape[0], -1) if z.ndim > 1 else z.reshape(1, -1)
        if z.shape[1] != self.d:
            raise RethinkError(f"points have {z.shape[1]} features; the network takes {self.d}.")
        t = z @ self.a  # (m,)
        j = np.searchsorted(self.b, t, side="right") - 1  # last kink at or left of t
        # c at each kink b_j, from the exact target at x_{j-1} (no accumulated sums).
        at_kink = np.zeros_like(self.y_sorted)
        gaps = self.b[1:] - self.x_sorted[:-1]  # (n-1,) = theta * g
        at_kink[1:] = self.y_sorted[:-1] + self.slopes[:-1] * gaps[:, None]
        out = np.zeros((t.shape[0], self.outputs))
        inside = j >= 0
        ji = j[inside]
        out[inside] = at_kink[ji] + self.slopes[ji] * (t[inside] - self.b[ji])[:, None]
        return out

    def dense_system(self) -> np.ndarray:
        """A_ij = max(x_i - b_j, 0) as an (n, n) array, for checking small problems."""
        if self.n > 20_000:
            raise RethinkError(f"the dense {self.n} x {self.n} system is too large to form.")
        return np.maximum(self.x_sorted[:, None] - self.b[None, :], 0.0)


def one_hot(labels: np.ndarray | torch.Tensor, num_classes: int) -> np.ndarray:
    """(n,) int labels -> (n, num_classes) float64 one-hot targets."""
    lab = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64)
    if lab.ndim != 1 or (lab.size and (lab.min() < 0 or lab.max() >= num_classes)):
        raise RethinkError(f"labels must be a 1-D array of integers in [0, {num_classes}).")
    out = np.zeros((lab.shape[0], num_classes))
    out[np.arange(lab.shape[0]), lab] = 1.0
    return out


def fit_expressivity(
    points: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor,
    *,
    seed: int = 0,
    theta: float = 0.25,
    max_attempts: int = 5,
) -> ExpressivityFit:
    """Build Theorem 1's network for (n, d) points and (n,) or (n, k) real targets.

    The direction a is drawn from a N(0, I) generator seeded by `seed` and normalised. Exact
    duplicate points raise a RethinkError (no function of the input can give them different
    outputs, and the theorem needs distinct points). Projections tied closer than rounding
    can resolve cause a fresh direction, up to `max_attempts` draws, then a RethinkError.
    """
    start = time.perf_counter()
    z = _as_float64(points, "points")
    if z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 1:
        raise RethinkError(f"points must be a non-empty (n, d) array, got shape {z.shape}.")
    y = _as_float64(targets, "targets")
    scalar = y.ndim == 1
    y = y.reshape(y.shape[0], -1) if y.ndim in (1, 2) else y
    if y.ndim != 2 or y.shape[0] != z.shape[0]:
        raise RethinkError(
            f"targets must have one row per point ({z.shape[0]}), got shape {tuple(y.shape)}."
        )
    if not 0.0 < theta < 1.0:
        raise RethinkError(f"theta must lie strictly between 0 and 1, got {theta}.")
    n, d = z.shape
    rng = np.random.default_rng(seed)
    for attempt in range(1, max_attempts + 1):
        a = rng.standard_normal(d)
        a /= np.linalg.norm(a)
        x = z @ a  # (n,)
        order = np.argsort(x, kind="stable")
        xs = x[order]
        gaps = np.diff(xs)  # (n-1,)
        # Rounding in <a, z> is ~sqrt(d) eps sum_k |a_k z_k| (a random walk of d roundings);
        # gaps below a few times that cannot be trusted to order the points.
        size = _abs_projection(z, a)[order]  # (n,) sum_k |a_k z_k|
        scale = np.maximum(size[:-1], size[1:])
        resolvable = 8.0 * np.sqrt(d) * _EPS64 * scale
        tied = np.flatnonzero(gaps <= resolvable)
        if tied.size:
            _raise_on_duplicates(z, order, tied)
            continue  # distinct but nearly tied along this a: draw another direction
        return _solve(a, xs, y[order], order, theta, attempt, start, scalar)
    raise RethinkError(
        f"after {max_attempts} random directions some projections were still tied within "
        "float64 rounding; the points are too close together (rescale or deduplicate them)."
    )


def _abs_projection(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """|z| @ |a| -> (n,), in row blocks so the temporary |z| never exceeds _BLOCK_ROWS rows."""
    abs_a = np.abs(a)
    out = np.empty(z.shape[0])
    for i in range(0, z.shape[0], _BLOCK_ROWS):
        out[i : i + _BLOCK_ROWS] = np.abs(z[i : i + _BLOCK_ROWS]) @ abs_a
    return out


def memory_needed(n: int, d: int, k: int, n_test: int = 0) -> int:
    """Bytes `expressivity_report` needs for n points in d dimensions, k outputs (k = 0: one
    real target) and n_test test points, counting the float64 points themselves.

    (n + n_test) d points, one row block of |z|, and about 14 (n, k) and 10 (n,) float64
    arrays (targets, sorted targets, slopes, weights, piecewise outputs; projections, order,
    biases, gaps), plus 256 MiB for the module's batched hidden layer and the interpreter.
    Python ints throughout, so an absurd n cannot overflow the estimate.
    """
    k = max(int(k), 1)
    n, d, n_test = int(n), int(d), int(n_test)
    arrays = (n + n_test) * d + min(n, _BLOCK_ROWS) * d + 14 * n * k + 10 * n + 4 * n_test * k
    return 8 * arrays + 256 * 2**20


def _solve(a, xs, ys, order, theta, attempts, start, scalar) -> ExpressivityFit:
    n = xs.shape[0]
    gaps = np.diff(xs)
    # First bias: one mean gap left of x_1 (any b_1 < x_1 works; this keeps w_1 moderate).
    first = (xs[-1] - xs[0]) / (n - 1) if n > 1 else 1.0
    first = first if first > 0 else 1.0
    b = np.empty(n)
    b[0] = xs[0] - first
    b[1:] = xs[:-1] + theta * gaps
    diag = xs - b  # A_ii, all > 0 by construction
    u = np.empty_like(ys)  # forcing term of the slope recurrence
    u[0] = ys[0] / diag[0]
    u[1:] = np.diff(ys, axis=0) / ((1.0 - theta) * gaps)[:, None]
    slopes = lfilter([1.0], [1.0, theta / (1.0 - theta)], u, axis=0)  # S_i = u_i - q S_{i-1}
    w = np.diff(slopes, axis=0, prepend=0.0)
    if not (np.all(np.isfinite(w)) and np.all(diag > 0)):
        raise RethinkError("the triangular solve overflowed; the points are too close together.")
    return ExpressivityFit(
        a=a,
        b=b,
        w=w,
        x_sorted=xs,
        y_sorted=ys,
        slopes=slopes,
        order=order,
        theta=theta,
        min_gap=float(gaps.min()) if n > 1 else float("inf"),
        min_diagonal=float(diag.min()),
        attempts=attempts,
        seconds=time.perf_counter() - start,
        scalar_targets=scalar,
    )


def _raise_on_duplicates(z: np.ndarray, order: np.ndarray, tied: np.ndarray) -> None:
    for k in tied:
        i, j = int(order[k]), int(order[k + 1])
        if np.array_equal(z[i], z[j]):
            raise RethinkError(
                f"points {min(i, j)} and {max(i, j)} are identical; Theorem 1 needs distinct "
                "points (remove duplicates first)."
            )


def _as_float64(arr: np.ndarray | torch.Tensor, what: str) -> np.ndarray:
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu().numpy()
    out = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise RethinkError(f"{what} contain NaN or infinite values.")
    return out
