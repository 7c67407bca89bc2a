"""Datasets for the theory commands: pixels in [0, 1], flattened, float64, labels corrupted
through rethink.data.prepare (so a corruption here is the same draw as in training runs)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(eq=False)
class FlatData:
    """x_*: float64 (N, d) pixels in [0, 1]; y_*: int64 (N,); y_train as corrupted."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    label: str


def load_flat(
    name: str,
    *,
    train_size: int | None = None,
    corruption: str = "none",
    corrupt_prob: float = 0.0,
    seed: int = 0,
    data_dir: str | None = None,
    subset_seed: int = 0,
) -> FlatData:
    """Load `name` with rethink.data, corrupt it with `seed`, scale to [0, 1] and flatten.

    The subset and the corruption follow RunSpec's seeds: `subset_seed` picks the training
    subset (as data.subset_seed does), `seed` draws the corruption (as a run's seed does)."""
    from rethink.data import load, prepare

    ds = load(name, data_dir=data_dir, train_size=train_size, subset_seed=subset_seed)
    prep = prepare(
        ds, preprocess="unit", corruption=corruption, corrupt_prob=corrupt_prob, seed=seed
    )
    return FlatData(
        x_train=prep.x_train.flatten(1).double(),
        y_train=prep.y_train,
        x_test=prep.x_test.flatten(1).double(),
        y_test=prep.y_test,
        num_classes=prep.num_classes,
        label=ds.label,
    )
