"""The paper's small AlexNet (Appendix A), after the TF cifar10 tutorial's model.

    [conv 5x5, 64, stride 1, "same" padding -> ReLU -> max-pool 3x3 stride 2 -> LRN] x 2
    -> flatten -> fc 384 -> ReLU -> fc 192 -> ReLU -> linear K

Max-pools pad by 1 on each side, so an H x W map becomes ceil(H/2) x ceil(W/2), like TF's
"SAME" pooling (28 -> 14 -> 7): 1,387,786 parameters for 3x28x28 input and 10 classes. A map
never shrinks to zero (1 stays 1), so 8x8 digits (-> 2x2) and 1x40 MNIST-1D (-> 1x10) work.
LRN uses the tutorial's depth_radius 4, bias 1, alpha 0.001/9, beta 0.75. Dropout, when asked
for, follows both hidden fully connected layers.
"""

from __future__ import annotations

import torch
from torch import nn

from rethink.models._layers import LocalResponseNorm, dropout_or_identity
from rethink.models._registry import register_model


def _halve(n: int) -> int:
    return (n + 2 - 3) // 2 + 1  # max-pool 3x3, stride 2, padding 1: ceil(n / 2)


class AlexNetSmall(nn.Module):
    """(B, C, H, W) -> (B, K) logits."""

    # optimize_for_training uses channels_last for it on CPU too: measured 2026-12-01, one
    # thread, batch 128 / 1,000: training x1.13, evaluation x1.53 (2 cores busy), and 30
    # backward passes at batch sizes 1-128 ran clean three times (unlike resnet18-k2's).
    cpu_channels_last = True

    def __init__(
        self, input_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        self.conv1 = nn.Conv2d(c, 64, 5, padding=2)
        self.conv2 = nn.Conv2d(64, 64, 5, padding=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.norm1 = LocalResponseNorm(64)
        self.norm2 = LocalResponseNorm(64)
        h, w = _halve(_halve(h)), _halve(_halve(w))
        self.fc1 = nn.Linear(64 * h * w, 384)
        self.fc2 = nn.Linear(384, 192)
        self.drop = dropout_or_identity(dropout)
        self.out = nn.Linear(192, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # relu(maxpool(z)) == maxpool(relu(z)) exactly (ReLU is monotone; padding is -inf),
        # values and gradients, and pooling first runs the ReLU on a quarter of the values.
        x = self.norm1(torch.relu(self.pool(self.conv1(x))))  # (B, 64, H/2, W/2)
        x = self.norm2(torch.relu(self.pool(self.conv2(x))))  # (B, 64, H/4, W/4)
        x = x.flatten(1)  # (B, 64 * H/4 * W/4), in (C, H, W) order whatever the memory format
        x = self.drop(torch.relu(self.fc1(x)))  # (B, 384)
        x = self.drop(torch.relu(self.fc2(x)))  # (B, 192)
        return self.out(x)


@register_model(
    "alexnet-small",
    default_lr=0.01,
    notes="two conv5x5(64)-maxpool-LRN blocks, fc 384-192; the paper's small AlexNet",
)
def _alexnet_small(shape: tuple[int, int, int], k: int, dropout: float) -> AlexNetSmall:
    return AlexNetSmall(shape, k, dropout)
