"""The loaded-dataset record and stratified, seeded subsets of it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from rethink.errors import RethinkError


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset as loaded from its source, before any preprocessing or corruption.

    x_train, x_test: uint8 tensors (N, C, H, W), pixel values 0..255.
    y_train, y_test: int64 tensors (N,), class indices 0..num_classes-1.
    provenance: where it came from: source, files, checksums, notes.
    label: how results on it are named, e.g. "CIFAR-10 (JPEG)".
    train_index: int64 (N_train,), the position of each training example in the loader's
    full training set (None: the full set itself, in order). `subset` keeps it, so labels
    published per image (CIFAR-10N) can be matched to the examples of any subset.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    class_names: tuple[str, ...]
    provenance: dict
    label: str
    train_index: torch.Tensor | None = None

    def train_positions(self) -> torch.Tensor:
        """int64 (N_train,): `train_index`, or 0..N_train-1 for a full training set."""
        if self.train_index is None:
            return torch.arange(len(self.y_train), dtype=torch.int64)
        return self.train_index

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={tuple(self.x_train.shape)}, "
            f"test={tuple(self.x_test.shape)}, classes={self.num_classes})"
        )


def stratified_indices(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a stratified random subset of size n, in ascending order.

    Each class gets round(n * share) places, rounded by largest remainder so they add up to n;
    which examples of a class are taken is drawn from `rng`.
    """
    labels = np.asarray(labels)
    total = len(labels)
    if not 0 < n <= total:
        raise RethinkError(f"a subset size must be between 1 and {total}, got {n}.")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (n / total)
    take = np.floor(exact).astype(np.int64)
    short = n - int(take.sum())
    if short:
        order = np.argsort(-(exact - take), kind="stable")
        take[order[:short]] += 1
    picked = []
    for cls, k in zip(classes, take, strict=True):
        members = np.flatnonzero(labels == cls)
        picked.append(rng.choice(members, size=int(k), replace=False))
    return np.sort(np.concatenate(picked))


def subset(ds: Dataset, train_size: int, seed: int = 0) -> Dataset:
    """The dataset with a stratified, seeded subset of `train_size` training examples."""
    n = len(ds.y_train)
    if train_size == n:
        return ds
    if not 0 < train_size <= n:
        raise RethinkError(
            f"--train-size must be between 1 and {n} for {ds.name}, got {train_size}."
        )
    from rethink.spec import derive_seed

    rng = np.random.default_rng(derive_seed(seed, "subset"))  # the run's one seed helper
    idx = stratified_indices(ds.y_train.numpy(), train_size, rng)
    index = torch.from_numpy(idx)
    prov = dict(ds.provenance, train_subset={"size": train_size, "seed": seed, "of": n})
    return dataclasses.replace(
        ds, x_train=ds.x_train[index], y_train=ds.y_train[index], provenance=prov,
        train_index=ds.train_positions()[index],
    )  # fmt: skip
