"""From a loaded Dataset to float tensors ready for training: prepare().

Order: uint8 -> float / 255 -> corruption (drawn from a generator derived from `seed`) ->
preprocessing (crop + per-image whitening, or per-channel standardization with the statistics
of the training set as corrupted, i.e. of what the model is trained on).

The CIFAR-10N kinds read the human labels of the dataset's training images
(rethink.data.cifar10n: an explicit `labels_file`, `data_dir`, $RETHINK_DATA or the cache);
noise-matrix reads its matrix (`matrix`: a CIFAR-10N noise name or a .npy / .csv file).
Input tensors are never modified: every step returns new tensors.
"""

from __future__ import annotations

import os
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
    matrix=None,
    labels_file: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
) -> Prepared:
    """Corrupt and preprocess a Dataset (see the module docstring for the order).

    corrupt_prob is the p of partial-labels (random-labels is p = 1; the pixel corruptions
    take none). matrix: noise-matrix's transition matrix (a CIFAR-10N noise name such as
    "cifar10n-worst", a .npy / .csv path, or a K x K array). labels_file / data_dir: where the
    CIFAR-10N labels are looked for first. Same arguments, same tensors.
    """
    name = preprocess
    if name not in PREPROCESS:
        raise RethinkError(
            f"unknown preprocessing {name!r}; choose one of {', '.join(PREPROCESS)}."
        )
    p = corruptions.check(corruption, corrupt_prob)
    if (matrix is not None) != (corruption == "noise-matrix"):
        raise RethinkError(
            "corruption noise-matrix needs a matrix (a CIFAR-10N noise name such as "
            "cifar10n-worst, or the path of a K x K row-stochastic .npy or .csv file)."
            if matrix is None
            else f"corruption {corruption} takes no matrix; only noise-matrix does."
        )
    human, t, extra = None, None, {}
    if corruption in corruptions.HUMAN_KINDS:
        human, extra = _human(ds, corruption, labels_file, data_dir, corrupt_test)
    elif corruption == "noise-matrix":
        t, extra = _matrix(ds, matrix, labels_file, data_dir)
    xtr, xte = to_unit(ds.x_train), to_unit(ds.x_test)
    res = corruptions.apply(
        corruption, xtr, ds.y_train, xte, ds.y_test,
        num_classes=ds.num_classes, generator=corruption_generator(seed), p=p,
        corrupt_test=corrupt_test, human=human, matrix=t,
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
        **extra,
    }
    # Labels are copied: an uncorrupted split would otherwise share memory with the Dataset,
    # which load() caches for the whole process (images are new tensors from to_unit already).
    return Prepared(
        x_train=xtr.contiguous(),
        y_train=res.y_train.clone(),
        x_test=xte.contiguous(),
        y_test=res.y_test.clone(),
        num_classes=ds.num_classes,
        input_shape=tuple(xtr.shape[1:]),
        changed=res.changed,
        realized_fraction=res.realized_fraction,
        meta=meta,
        y_train_clean=ds.y_train.clone(),
    )


def _human(ds: Dataset, kind: str, labels_file, data_dir, corrupt_test: bool):
    """The CIFAR-10N labels of ds's training examples, and what to record about them."""
    from rethink.data import cifar10n

    if corrupt_test:
        raise RethinkError(
            f"{kind} relabels the CIFAR-10 training images only; there are no human labels "
            "for the test split, so it cannot be combined with corrupt_test."
        )
    labels = cifar10n.load_labels(labels_file, data_dir)
    index = cifar10n.official_index(ds, labels)
    key = cifar10n.noise_key(kind)
    human = torch.from_numpy(labels[key][index].copy())
    record = cifar10n.labels_record(labels_file, data_dir)
    record.update(noise=kind, array=key, full_set_rate=cifar10n.noise_rates(labels)[kind])
    return human, {"human_labels": record}


def _matrix(ds: Dataset, matrix, labels_file, data_dir):
    """noise-matrix's T as float64 (K, K), and what to record about it."""
    from rethink.data import cifar10n

    t, source = cifar10n.load_matrix(matrix, ds.num_classes, labels_file, data_dir)
    prior = cifar10n.class_prior(ds.y_train, ds.num_classes)
    rate = cifar10n.expected_rate(t, prior)
    record = {"source": source, "matrix": t.tolist(), "expected_rate": rate}
    try:
        record["same_rate_prob"] = cifar10n.same_rate_prob(t, prior)
    except RethinkError:
        record["same_rate_prob"] = None  # more noise than uniform noise can make
    if source in cifar10n.NOISES:
        record["labels"] = cifar10n.labels_record(labels_file, data_dir)
    return t, {"noise_matrix": record}


_preprocess = preprocess
