"""From a loaded Dataset to float tensors ready for training: prepare().

Order: uint8 -> float / 255 -> corruption (drawn from a generator derived from `seed`) ->
preprocessing (crop + per-image whitening, or per-channel standardization with the statistics
of the training set as corrupted, i.e. of what the model is trained on).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rethink import corruptions
from rethink.data.dataset import Dataset
from rethink.data.preprocess import PREPROCESS, preprocess, to_unit
from rethink.errors import RethinkError


@dataclass(eq=False)
class Prepared:
    """Tensors for one run.

    x_train, x_test: float32 (N, C, H, W), preprocessed. y_train: int64 (N,), the labels to
    train on (corrupted if the run corrupts labels); y_test: int64, true unless corrupt_test.
    changed: bool (N_train,), the training examples the corruption changed.
    y_train_clean: the true training labels. meta: a JSON-able record of what was done.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, int, int]
    changed: torch.Tensor
    realized_fraction: float
    meta: dict = field(default_factory=dict)
    y_train_clean: torch.Tensor | None = None


def corruption_generator(seed: int) -> torch.Generator:
    """The corruption's generator for a run seed: rethink.spec.derive_seed(seed, "corruption"),
    independent of the run's other streams (weight init, batch order, dropout, subset)."""
    from rethink.spec import derive_seed

    return torch.Generator().manual_seed(derive_seed(seed, "corruption"))


def prepare(
    ds: Dataset,
    *,
    preprocess: str = "standardize",
    corruption: str = "none",
    corrupt_prob: float = 0.0,
    seed: int = 0,
    corrupt_test: bool = False,
) -> Prepared:
    """Corrupt and preprocess a Dataset (see the module docstring for the order).

    corrupt_prob is the p of partial-labels (random-labels is p = 1; the pixel corruptions
    take none). Same arguments, same tensors.
    """
    name = preprocess
    if name not in PREPROCESS:
        raise RethinkError(
            f"unknown preprocessing {name!r}; choose one of {', '.join(PREPROCESS)}."
        )
    p = corruptions.check(corruption, corrupt_prob)
    xtr, xte = to_unit(ds.x_train), to_unit(ds.x_test)
    res = corruptions.apply(
        corruption, xtr, ds.y_train, xte, ds.y_test,
        num_classes=ds.num_classes, generator=corruption_generator(seed), p=p,
        corrupt_test=corrupt_test,
    )  # fmt: skip
    xtr, xte, record = _preprocess(res.x_train, res.x_test, name)
    meta = {
        "dataset": ds.name,
        "label": ds.label,
        "train_size": len(ds.y_train),
        "test_size": len(ds.y_test),
        "preprocess": record,
        "corruption": corruption,
        "corrupt_prob": p,
        "corrupt_test": bool(corrupt_test),
        "seed": int(seed),
        "n_changed": int(res.changed.sum()),
        "realized_fraction": res.realized_fraction,
        "test_changed_fraction": float(res.test_changed.float().mean()) if len(ds.y_test) else 0.0,
        "provenance": ds.provenance,
    }
    return Prepared(
        x_train=xtr.contiguous(),
        y_train=res.y_train,
        x_test=xte.contiguous(),
        y_test=res.y_test,
        num_classes=ds.num_classes,
        input_shape=tuple(xtr.shape[1:]),
        changed=res.changed,
        realized_fraction=res.realized_fraction,
        meta=meta,
        y_train_clean=ds.y_train,
    )


_preprocess = preprocess
