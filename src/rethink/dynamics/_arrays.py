"""Per-example arrays from one evaluation pass: what the store keeps of every epoch.

`example_arrays(logits, labels)` turns the logits of a full pass over the training set into
four compact arrays, one value per example:

| field   | dtype   | meaning |
|---------|---------|---------|
| correct | bool    | the prediction equals the (possibly corrupted) label the run trains on |
| margin  | float16 | logit of that label minus the largest other logit (Pleiss et al., 2020) |
| loss    | float16 | cross-entropy of that label, in nats (so p(label) = exp(-loss)) |
| pred    | uint8   | the predicted class (argmax; int16 / int32 for more than 256 classes) |

float16 keeps about three significant digits (relative error <= 2**-11) up to 65,504: enough
for margins and losses, which are averaged over epochs or compared with zero. Values beyond
that range are clipped to +-65,504 rather than stored as infinities. The predicted class needs
an integer type (float16 cannot hold class ids exactly above 2,048), and `correct` is a bool.
Everything is computed in float32 before the cast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

FIELDS = ("correct", "margin", "loss", "pred")
_F16_MAX = float(np.finfo(np.float16).max)


def pred_dtype(num_classes: int) -> np.dtype:
    """The smallest integer dtype that holds every class id."""
    if num_classes <= 256:
        return np.dtype(np.uint8)
    if num_classes <= 32768:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


def example_arrays(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, np.ndarray]:
    """correct, margin, loss, pred (each (N,), numpy, on the CPU) from logits (N, K) and the
    labels (N,) the run trains on. Ties in the argmax go to the lower class id (torch.argmax),
    so a tied example has margin 0 and counts as correct only if its label is the lower id."""
    import torch
    import torch.nn.functional as F

    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"need logits (N, K) and labels (N,), got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    with torch.no_grad():
        z = logits.detach().float()  # (N, K)
        y = labels.detach().to(z.device, torch.long)  # (N,)
        pred = z.argmax(dim=1)  # (N,)
        own = z.gather(1, y[:, None]).squeeze(1)  # (N,) logit of the label
        others = z.scatter(1, y[:, None], float("-inf"))  # (N, K) the label masked out
        margin = own - others.max(dim=1).values  # (N,)
        loss = F.cross_entropy(z, y, reduction="none")  # (N,)
        out = {
            "correct": (pred == y).cpu().numpy(),
            "margin": margin.clamp(-_F16_MAX, _F16_MAX).cpu().numpy().astype(np.float16),
            "loss": loss.clamp(0.0, _F16_MAX).cpu().numpy().astype(np.float16),
            "pred": pred.cpu().numpy().astype(pred_dtype(z.shape[1])),
        }
    return out
