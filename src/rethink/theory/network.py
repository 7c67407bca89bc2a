"""Theorem 1's network as an ordinary torch module, and a memory-bounded way to run it.

TwoLayerReLU(x) = Linear(n, k, bias=False)(ReLU(<a, x> - b)): the first layer is a
Linear(d, n) whose n weight rows all equal one vector a, so it stores a (d,) and its bias
-b (n,) instead of an (n, d) matrix; the parameter count is d + n + n k (2n + d for one
output), as the theorem states.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rethink.errors import RethinkError


class SharedDirection(nn.Module):
    """Linear(d, n)-like layer with every weight row equal to `direction`: (B, d) -> (B, n)."""

    def __init__(self, direction: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.direction = nn.Parameter(direction)  # (d,) the shared row a
        self.bias = nn.Parameter(bias)  # (n,) equal to -b

    @property
    def in_features(self) -> int:
        return int(self.direction.shape[0])

    @property
    def out_features(self) -> int:
        return int(self.bias.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.direction).unsqueeze(-1) + self.bias  # (B, n)


class TwoLayerReLU(nn.Module):
    """c(x) = sum_j w_j max(<a, x> - b_j, 0), one output per column of w.

    Inputs of any shape (B, ...) are flattened to (B, d). Build it in float64: the slopes of
    an interpolant of n = 60,000 images reach ~1e9 and float32 inputs lose the fit.
    """

    def __init__(
        self, a: np.ndarray, b: np.ndarray, w: np.ndarray, *, dtype: torch.dtype = torch.float64
    ) -> None:
        super().__init__()
        a_t = torch.as_tensor(np.asarray(a), dtype=dtype)
        b_t = torch.as_tensor(np.asarray(b), dtype=dtype)
        w_t = torch.as_tensor(np.asarray(w).reshape(b_t.shape[0], -1), dtype=dtype)  # (n, k)
        self.hidden = SharedDirection(a_t.clone(), -b_t)
        self.act = nn.ReLU(inplace=True)  # the (B, n) hidden tensor is a fresh temporary
        self.out = nn.Linear(w_t.shape[0], w_t.shape[1], bias=False, dtype=dtype)
        with torch.no_grad():
            self.out.weight.copy_(w_t.T)  # (k, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1).to(self.out.weight.dtype)
        return self.out(self.act(self.hidden(x)))  # (B, k)


@torch.no_grad()
def evaluate(
    model: nn.Module, points: torch.Tensor | np.ndarray, *, max_bytes: int = 256 * 2**20
) -> torch.Tensor:
    """model(points) in row batches whose hidden layer stays under `max_bytes` -> (m, k)."""
    x = torch.as_tensor(points)
    if x.dtype == torch.uint8:
        raise RethinkError("scale uint8 images to [0, 1] floats before evaluating the network.")
    hidden = getattr(getattr(model, "hidden", None), "out_features", 1)
    itemsize = next(model.parameters()).element_size()
    rows = max(1, int(max_bytes // (hidden * itemsize * 2)))
    outs = [model(x[i : i + rows]) for i in range(0, x.shape[0], rows)]
    return torch.cat(outs) if outs else torch.empty(0)
