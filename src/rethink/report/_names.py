"""One naming of settings for every table, legend and title; honest grouping of runs.

A group is every run whose spec is the same except for its seed: only seeds are averaged.
`varying(runs)` lists the spec fields that differ between runs, and `group_name` names a
group by exactly those fields, so two settings never share a name (the weight-decay and
no-weight-decay runs of Table 1 are two groups named "weight decay 0" and
"weight decay 0.0005", not one group of "runs 2").
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

# Spec fields that only seed randomness: the only ones a group may pool over.
SEED_FIELDS = ("seed",)
# Fields that make up the corruption setting, named together by `corruption_name`.
CORRUPTION_FIELDS = ("corruption.kind", "corruption.prob", "corruption.matrix")

_KIND = {
    "none": "true labels",
    "random-labels": "random labels",
    "shuffled-pixels": "shuffled pixels",
    "random-pixels": "random pixels",
    "gaussian": "Gaussian",
}
KIND_ORDER = [
    "none",
    "partial-labels",
    "random-labels",
    "shuffled-pixels",
    "random-pixels",
    "gaussian",
    "noise-matrix",
]
_DATASET = {
    "cifar10": "CIFAR-10",
    "cifar10-jpeg": "CIFAR-10 (JPEG)",
    "cifar100": "CIFAR-100",
    "mnist": "MNIST",
    "mnist-5k": "MNIST-5k",
    "mnist1d": "MNIST-1D",
    "fashion-mnist": "Fashion-MNIST",
    "digits": "digits (8x8)",
}
_MODEL = {
    "inception-small": "Inception (small)",
    "inception-small-nobn": "Inception (small, no BN)",
    "alexnet-small": "AlexNet (small)",
    "resnet18": "ResNet-18",
}
_FIELD = {
    "data.dataset": "dataset",
    "data.train_size": "training images",
    "data.subset_seed": "subset seed",
    "data.preprocess": "preprocessing",
    "corruption.corrupt_test": "corrupted test split",
    "model.name": "model",
    "model.dropout": "dropout",
    "train.weight_decay": "weight decay",
    "train.augment": "augmentation",
    "train.lr": "lr",
    "train.lr_decay_per_epoch": "lr decay per epoch",
    "train.batch_size": "batch size",
    "train.max_epochs": "max epochs",
    "train.until_fit": "until fit",
}


def dataset_name(name: str) -> str:
    """'cifar10' -> 'CIFAR-10'; unknown names as they are."""
    return _DATASET.get(str(name), str(name))


def model_name(name: str) -> str:
    """'mlp-1x512' -> 'MLP 1x512', 'inception-small' -> 'Inception (small)'."""
    name = str(name)
    if name.startswith("mlp-"):
        return "MLP " + name[4:]
    if name.startswith("resnet18-k"):
        return f"ResNet-18 (width {name[len('resnet18-k') :]})"
    return _MODEL.get(name, name)


def corruption_name(kind: str, prob: Any = None, matrix: Any = None) -> str:
    """'true labels', 'partial labels (p=0.4)', 'human labels (CIFAR-10N aggre)',
    'class-dependent noise (T from cifar10n-worst)', ..."""
    kind = str(kind)
    if kind in _KIND:
        return _KIND[kind]
    if kind == "partial-labels":
        return f"partial labels (p={float(prob):g})" if _present(prob) else "partial labels"
    if kind.startswith("cifar10n-"):
        return f"human labels (CIFAR-10N {kind[len('cifar10n-') :]})"
    if kind == "noise-matrix":
        src = str(matrix) if _present(matrix) else "a matrix"
        return f"class-dependent noise (T from {src})"
    return kind


def run_corruption(run: pd.Series) -> str:
    return corruption_name(
        run.get("corruption.kind"), run.get("corruption.prob"), run.get("corruption.matrix")
    )


def field_name(field: str) -> str:
    """A spec column's name for people: 'train.weight_decay' -> 'weight decay'."""
    return _FIELD.get(field, field.split(".", 1)[-1].replace("_", " "))


def value_text(field: str, value: Any) -> str:
    if field == "data.dataset":
        return dataset_name(value)
    if field == "model.name":
        return model_name(value)
    if not _present(value):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _key(v: Any) -> str:
    return json.dumps(v if _present(v) else None, sort_keys=True, default=str)


def spec_columns(runs: pd.DataFrame) -> list[str]:
    """The flattened spec columns of a runs frame (dotted names, plus 'seed')."""
    heads = ("data.", "corruption.", "model.", "train.")
    return [c for c in runs.columns if c.startswith(heads) or c in SEED_FIELDS]


def varying(runs: pd.DataFrame, exclude: tuple[str, ...] = SEED_FIELDS) -> list[str]:
    """Spec fields (not `exclude`) whose value differs between the runs, in spec order."""
    out = []
    for col in spec_columns(runs):
        if col in exclude:
            continue
        if runs[col].map(_key).nunique() > 1:
            out.append(col)
    return out


def group_key(run: pd.Series, fields: list[str]) -> tuple[str, ...]:
    return tuple(_key(run.get(f)) for f in fields)


def group_name(run: pd.Series, fields: list[str], corruption: bool = True) -> str:
    """A group's name from the fields that differ: the corruption's name first (if any
    corruption field differs, or `corruption` is forced on), then 'field value' pairs."""
    parts = []
    if corruption or any(f in CORRUPTION_FIELDS for f in fields):
        parts.append(run_corruption(run))
    for f in fields:
        if f in CORRUPTION_FIELDS:
            continue
        if f in ("data.dataset", "model.name"):
            parts.append(value_text(f, run.get(f)))
        else:
            parts.append(f"{field_name(f)} {value_text(f, run.get(f))}")
    return ", ".join(parts) if parts else "all runs"


def groups(runs: pd.DataFrame, fields: list[str]) -> list[tuple[pd.Series, pd.DataFrame]]:
    """(first run, runs) per distinct value of `fields`, in first-seen order, corruption
    kinds in the paper's order."""
    if runs.empty:
        return []
    keys = runs.apply(lambda r: group_key(r, fields), axis=1)
    out = []
    for k in dict.fromkeys(keys):
        g = runs[keys == k]
        out.append((g.iloc[0], g))

    def order(item):
        kind = item[0].get("corruption.kind")
        return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)

    return sorted(out, key=order) if "corruption.kind" in fields else out


def title(runs: pd.DataFrame) -> str:
    """'CIFAR-10, MLP 1x512' (or 'CIFAR-10, 3 models') for figure titles."""
    ds = sorted({dataset_name(x) for x in runs["data.dataset"].dropna()})
    ms = sorted({model_name(x) for x in runs["model.name"].dropna()})
    d = ds[0] if len(ds) == 1 else f"{len(ds)} datasets"
    m = ms[0] if len(ms) == 1 else f"{len(ms)} models"
    return f"{d}, {m}"
