"""Learning-rate schedules: the lr used during each training epoch, as a pure function.

Epochs are numbered from 1 (epoch 0 is the evaluation before training). Every schedule starts
at the base lr in epoch 1; `n` is the number of training examples (one epoch = n examples):

- constant:     lr
- paper:        lr * lr_decay_per_epoch ** ((epoch - 1) * n / 50,000)
                Zhang et al.'s "x0.95 per epoch" on CIFAR-10's 50,000 images, stated per
                example seen: exactly per epoch on all of CIFAR-10, and the same lr at the same
                optimization step on any subset (a 1,000-image run does not decay 50x faster).
- paper-epoch:  lr * lr_decay_per_epoch ** (epoch - 1)   (per epoch of this training set,
                whatever its size: the paper's recipe read literally; rethink 0.1's `paper`)
- exponential:  the same formula as paper-epoch, for decays other than the paper's
- step:         lr * step_gamma ** ((epoch - 1) // step_epochs)
- cosine:       lr * (1 + cos(pi * (epoch - 1) / max_epochs)) / 2   (never reaches 0)

The schedule is stateless, so a resumed run needs nothing but the epoch number.
"""

from __future__ import annotations

import math

from rethink.errors import RethinkError
from rethink.spec import PAPER_DECAY_EXAMPLES, SCHEDULES, TrainSpec


def lr_at(
    train: TrainSpec, epoch: int, n: int | None = None, base_lr: float | None = None
) -> float:
    """The learning rate for training epoch `epoch` (>= 1) of an n-example training set."""
    lr = train.lr if base_lr is None else base_lr
    if lr is None:
        raise RethinkError("the learning rate is unset; normalize the spec first.")
    e = max(int(epoch), 1) - 1  # epochs of decay already applied
    kind = train.schedule
    if kind == "constant":
        return float(lr)
    if kind == "paper":
        if n is None:
            raise RethinkError("the paper schedule needs the training-set size.")
        return float(lr * train.lr_decay_per_epoch ** (e * n / PAPER_DECAY_EXAMPLES))
    if kind in ("paper-epoch", "exponential"):
        return float(lr * train.lr_decay_per_epoch**e)
    if kind == "step":
        return float(lr * train.step_gamma ** (e // train.step_epochs))
    if kind == "cosine":
        return float(lr * 0.5 * (1.0 + math.cos(math.pi * e / train.max_epochs)))
    raise RethinkError(f"unknown schedule '{kind}'; choose one of: {', '.join(SCHEDULES)}.")
