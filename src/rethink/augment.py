"""Batched data augmentation: pad-and-random-crop and horizontal flip over a whole batch.

Random draws come from an explicit CPU `torch.Generator`, so the same seed gives the same
augmentation on every device; the draws are then moved to the batch's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAD = 4  # pixels of zero padding on each side before a random crop of the original size


def random_crop(x: torch.Tensor, gen: torch.Generator, pad: int = PAD) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W): zero-pad by `pad`, crop each image at a random offset."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=gen).to(x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W): each image mirrored left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augment(x: torch.Tensor, kind: str, gen: torch.Generator) -> torch.Tensor:
    """Apply augmentation `kind` (none | crop | flip | crop+flip) to a batch (B, C, H, W)."""
    if kind == "none":
        return x
    if "crop" in kind:
        x = random_crop(x, gen)
    if "flip" in kind:
        x = random_flip(x, gen)
    return x
