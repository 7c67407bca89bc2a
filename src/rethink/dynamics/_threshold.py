"""Threshold samples for the area-under-the-margin rule (Pleiss et al., "Identifying
mislabeled data using the area under the margin ranking", NeurIPS 2020, Section 3).

Pleiss et al. calibrate the AUM cut-off with examples that are mislabelled on purpose:
floor(N / (K + 1)) training examples, drawn uniformly without replacement, are moved to an
extra class K (so the network has K + 1 outputs and no example truly belongs to class K).
Such examples can only be memorized, so their AUM is what a mislabelled example looks like;
the 99th percentile of their AUMs is the threshold (rethink.dynamics.scores.aum_threshold).
The paper repeats training with a second, disjoint set of threshold samples so that every
example is scored once as a normal example; `exclude` gives that second draw.
"""

from __future__ import annotations

import torch


def threshold_samples(
    y: torch.Tensor,
    num_classes: int,
    generator: torch.Generator,
    *,
    exclude: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(y_new, mask): y (N,) int64 with floor(N / (num_classes + 1)) examples, drawn with
    `generator`, relabelled to the extra class `num_classes`; mask (N,) bool marks them.
    `exclude` (N,) bool: examples that must not be drawn (a previous draw's mask)."""
    y = torch.as_tensor(y)
    if y.ndim != 1:
        raise ValueError(f"y must be (N,), got {tuple(y.shape)}")
    if num_classes < 1 or (len(y) and int(y.max()) >= num_classes):
        raise ValueError("labels must lie in [0, num_classes)")
    n = len(y)
    count = n // (num_classes + 1)
    pool = torch.arange(n)
    if exclude is not None:
        pool = pool[~torch.as_tensor(exclude, dtype=torch.bool)]
    if count > len(pool):
        raise ValueError(f"need {count} threshold samples but only {len(pool)} are eligible")
    chosen = pool[torch.randperm(len(pool), generator=generator)[:count]]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[chosen] = True
    y_new = y.clone()
    y_new[mask] = num_classes
    return y_new, mask
