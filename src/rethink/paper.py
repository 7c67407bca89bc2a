"""The paper's published numbers as data, each with its source and whether it is verified.

Source: Zhang, Bengio, Hardt, Recht, Vinyals, "Understanding deep learning requires rethinking
generalization", ICLR 2017 (arXiv:1611.03530). `verified=False` marks numbers taken from
secondary sources (a third-party rerun or the paper's text; approximate targets).
Accuracies are percentages here (the paper's unit); the store holds fractions.

    >>> from rethink import paper
    >>> paper.table1_row("mlp-1x512", crop=False, weight_decay=False, random_labels=True).test
    10.61
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER = "Zhang et al., ICLR 2017"
CHANCE_TEST_ERROR_CIFAR10 = 90.0  # percent: 10 balanced classes


@dataclass(frozen=True)
class Table1Row:
    """One row of Table 1 (CIFAR-10): train / test accuracy in percent."""

    model: str  # rethink model name
    crop: bool  # random-crop augmentation
    weight_decay: bool
    random_labels: bool
    train: float
    test: float
    source: str = f"{PAPER}, Table 1"
    verified: bool = True


def _t1(model, crop, wd, rand, train, test):
    return Table1Row(model, crop, wd, rand, train, test)


TABLE1: tuple[Table1Row, ...] = (
    _t1("inception-small", True, True, False, 100.0, 89.05),
    _t1("inception-small", True, False, False, 100.0, 89.31),
    _t1("inception-small", False, True, False, 100.0, 86.03),
    _t1("inception-small", False, False, False, 100.0, 85.75),
    _t1("inception-small", False, False, True, 100.0, 9.78),
    _t1("inception-small-nobn", False, True, False, 100.0, 83.00),
    _t1("inception-small-nobn", False, False, False, 100.0, 82.00),
    _t1("inception-small-nobn", False, False, True, 100.0, 10.12),
    _t1("alexnet-small", True, True, False, 99.90, 81.22),
    _t1("alexnet-small", True, False, False, 99.82, 79.66),
    _t1("alexnet-small", False, True, False, 100.0, 77.36),
    _t1("alexnet-small", False, False, False, 100.0, 76.07),
    _t1("alexnet-small", False, False, True, 99.82, 9.86),
    _t1("mlp-3x512", False, True, False, 100.0, 53.35),
    _t1("mlp-3x512", False, False, False, 100.0, 52.39),
    _t1("mlp-3x512", False, False, True, 100.0, 10.48),
    _t1("mlp-1x512", False, True, False, 99.80, 50.39),
    _t1("mlp-1x512", False, False, False, 100.0, 50.51),
    _t1("mlp-1x512", False, False, True, 99.34, 10.61),
)


@dataclass(frozen=True)
class RandomLabelRegularizer:
    """Appendix table: training accuracy (%) on random labels with one regularizer on."""

    model: str
    regularizer: str  # "weight_decay", "crop", "flip" (the paper: flip/rotation)
    train: float | None  # None: the paper says it fails to converge
    note: str = ""
    source: str = f"{PAPER}, appendix (random labels with regularizers)"
    verified: bool = False


TABLE4: tuple[RandomLabelRegularizer, ...] = (
    RandomLabelRegularizer("inception-small", "weight_decay", 100.0),
    RandomLabelRegularizer("inception-small", "crop", 99.93),
    RandomLabelRegularizer("inception-small", "flip", 99.28, "paper: flip and rotation"),
    RandomLabelRegularizer("alexnet-small", "weight_decay", None, "fails to converge (text)"),
    RandomLabelRegularizer("mlp-3x512", "weight_decay", 100.0),
    RandomLabelRegularizer("mlp-1x512", "weight_decay", 99.21),
)

# Fig. 1a: steps (batch 128) until the training loss is <= 0.1, small Inception on CIFAR-10.
FIG1A_STEPS_TO_LOSS_0_1: dict[str, int] = {
    "none": 4000,
    "shuffled-pixels": 5600,
    "gaussian": 8800,
    "random-pixels": 11900,
    "random-labels": 16600,
}
FIG1A_SOURCE = "a third-party rerun of Fig. 1a, not the paper itself"
FIG1A_VERIFIED = False

# Fig. 2: small Inception with and without BatchNorm differ by 3-4 points of test accuracy.
FIG2_BATCHNORM_GAP_POINTS = (3.0, 4.0)

# Measured in this project with a plain PyTorch loop: CIFAR-10 JPEG, paper
# preprocessing, MLP 1x512, SGD 0.01 x0.95/epoch, batch 128; percent.
PLAIN_LOOP_REFERENCE = {
    ("mlp-1x512", False): {"train": 99.93, "test": 51.5, "epochs": 60},
    ("mlp-1x512", True): {"train": 98.2, "test": 10.1, "epochs": 150},
}


def table1_row(
    model: str, *, crop: bool, weight_decay: bool, random_labels: bool
) -> Table1Row | None:
    """The Table 1 row for this setting, or None if the paper has no such row."""
    for row in TABLE1:
        key = (row.model, row.crop, row.weight_decay, row.random_labels)
        if key == (model, crop, weight_decay, random_labels):
            return row
    return None


def table4_row(model: str, regularizer: str) -> RandomLabelRegularizer | None:
    """The appendix row for random labels with one regularizer, or None."""
    for row in TABLE4:
        if (row.model, row.regularizer) == (model, regularizer):
            return row
    return None


__all__ = [
    "CHANCE_TEST_ERROR_CIFAR10",
    "FIG1A_SOURCE",
    "FIG1A_STEPS_TO_LOSS_0_1",
    "FIG1A_VERIFIED",
    "FIG2_BATCHNORM_GAP_POINTS",
    "PLAIN_LOOP_REFERENCE",
    "RandomLabelRegularizer",
    "TABLE1",
    "TABLE4",
    "Table1Row",
    "table1_row",
    "table4_row",
]
