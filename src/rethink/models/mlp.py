"""Multilayer perceptrons: `mlp-<D>x<W>` has D hidden layers of W ReLU units.

The paper's MLP 1x512 and 3x512 take the flattened 28x28x3 crop (2,352 inputs). Dropout
(when asked for) follows every hidden ReLU.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rethink.errors import RethinkError
from rethink.models._layers import dropout_or_identity
from rethink.models._registry import register_model


class MLP(nn.Module):
    """(B, C, H, W) -> flatten (B, C*H*W) -> [Linear(W) -> ReLU -> dropout] x D -> Linear(K)."""

    def __init__(
        self, in_features: int, num_classes: int, depth: int, width: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        sizes = [in_features] + [width] * depth
        self.hidden = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.drop = dropout_or_identity(dropout)
        self.out = nn.Linear(sizes[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, K)
        x = x.flatten(1)
        for layer in self.hidden:
            x = self.drop(torch.relu(layer(x)))
        return self.out(x)


@register_model(
    "mlp-<D>x<W>",
    pattern=r"mlp-(\d+)x(\d+)",
    examples=("mlp-1x512", "mlp-3x512"),
    notes="D hidden layers of W ReLU units; the paper's MLP 1x512 and 3x512",
)
def _mlp(shape: tuple[int, int, int], k: int, dropout: float, depth: int, width: int) -> MLP:
    if depth < 1 or width < 1:
        raise RethinkError(f"mlp-{depth}x{width} needs at least one hidden layer of one unit.")
    return MLP(math.prod(shape), k, depth, width, dropout)
