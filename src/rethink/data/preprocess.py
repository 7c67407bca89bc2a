"""Preprocessing, chosen per run by name and recorded with it.

- "unit": pixels / 255, nothing else.
- "standardize" (default): / 255, then per-channel (x - mean_c) / std_c with the training
  set's statistics, applied to both splits.
- "paper" (Zhang et al., Appendix A): / 255, centre crop to 28x28 when both sides are larger
  than 28 (CIFAR's 32 -> 28), then per-image whitening
  (x - mean(x)) / max(std(x), 1/sqrt(N)), N = C*H*W.
"""

from __future__ import annotations

import torch

from rethink.errors import RethinkError

PREPROCESS = ("standardize", "paper", "unit")
PAPER_CROP = 28


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1], a new tensor (x itself is never changed: a
    float32 x would otherwise be divided in place)."""
    return torch.div(x, 255.0).to(torch.float32)


def center_crop(x: torch.Tensor, size: int = PAPER_CROP) -> torch.Tensor:
    """Centre crop of (N, C, H, W) to size x size when both sides exceed `size`; otherwise x
    unchanged (MNIST-size images, and 1-D signals such as MNIST-1D's 1 x 40, are not cut)."""
    h, w = x.shape[-2:]
    if min(h, w) <= size:
        return x
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def whiten_per_image(x: torch.Tensor) -> torch.Tensor:
    """Per-image whitening as in tf.image.per_image_standardization: (x - mean) /
    max(std, 1/sqrt(N)) over each image's N = C*H*W values (population std)."""
    flat = x.reshape(len(x), -1)
    std, mean = torch.std_mean(flat, dim=1, unbiased=False, keepdim=True)
    inv = 1.0 / std.clamp_min(1.0 / flat.shape[1] ** 0.5)
    return torch.addcmul(-mean * inv, flat, inv).reshape(x.shape)  # one pass: x*inv - mean*inv


def standardize(
    x_train: torch.Tensor, x_test: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Per-channel standardization with training-set statistics (a zero std is left as 1)."""
    c = x_train.shape[1]
    var, mean = torch.var_mean(x_train, dim=(0, 2, 3), unbiased=False)  # (C,) each
    std = var.sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    inv = (1.0 / std).view(1, c, 1, 1)
    shift = (-mean / std).view(1, c, 1, 1)
    stats = {"mean": mean.tolist(), "std": std.tolist()}
    return torch.addcmul(shift, x_train, inv), torch.addcmul(shift, x_test, inv), stats


def preprocess(
    x_train: torch.Tensor, x_test: torch.Tensor, kind: str
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Apply preprocessing `kind` to float32 images already in [0, 1] (the corruption may
    have happened in between). Returns (x_train, x_test, record of what was done)."""
    if kind not in PREPROCESS:
        raise RethinkError(
            f"unknown preprocessing {kind!r}; choose one of {', '.join(PREPROCESS)}."
        )
    record: dict = {"name": kind, "scale": "1/255"}
    if kind == "unit":
        return x_train, x_test, record
    if kind == "standardize":
        xtr, xte, record["channel_stats"] = standardize(x_train, x_test)
        return xtr, xte, record
    shape = tuple(x_train.shape[-2:])
    xtr, xte = center_crop(x_train), center_crop(x_test)
    record["crop"] = None if tuple(xtr.shape[-2:]) == shape else list(xtr.shape[-2:])
    record["whitening"] = "per-image, floor 1/sqrt(C*H*W)"
    return whiten_per_image(xtr.contiguous()), whiten_per_image(xte.contiguous()), record
