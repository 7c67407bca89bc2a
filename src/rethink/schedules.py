"""Learning-rate schedules: the lr used during each training epoch, as a pure function.

Epochs are numbered from 1 (epoch 0 is the evaluation before training). Every schedule starts
at the base lr in epoch 1:

- constant:     lr
- paper:        lr * lr_decay_per_epoch ** (epoch - 1)   (Zhang et al.: 0.95, "x0.95 per epoch")
- exponential:  the same formula; a separate name for decays other than the paper's
- step:         lr * step_gamma ** ((epoch - 1) // step_epochs)
- cosine:       lr * (1 + cos(pi * (epoch - 1) / max_epochs)) / 2   (never reaches 0)

The schedule is stateless, so a resumed run needs nothing but the epoch number.
"""

from __future__ import annotations

import math

from rethink.errors import RethinkError
from rethink.spec import SCHEDULES, TrainSpec


def lr_at(train: TrainSpec, epoch: int, base_lr: float | None = None) -> float:
    """The learning rate for training epoch `epoch` (>= 1) under `train`'s schedule."""
    lr = train.lr if base_lr is None else base_lr
    if lr is None:
        raise RethinkError("the learning rate is unset; normalize the spec first.")
    e = max(int(epoch), 1) - 1  # epochs of decay already applied
    kind = train.schedule
    if kind == "constant":
        return float(lr)
    if kind in ("paper", "exponential"):
        return float(lr * train.lr_decay_per_epoch**e)
    if kind == "step":
        return float(lr * train.step_gamma ** (e // train.step_epochs))
    if kind == "cosine":
        return float(lr * 0.5 * (1.0 + math.cos(math.pi * e / train.max_epochs)))
    raise RethinkError(f"unknown schedule '{kind}'; choose one of: {', '.join(SCHEDULES)}.")
