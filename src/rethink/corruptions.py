"""The randomization tests of Zhang et al. (2017), Section 2.1, as pure functions.

Every function takes an explicit `torch.Generator` and returns new tensors; the inputs are
never modified. A corruption is drawn once (before training) and stays fixed.

Decisions on the points the paper leaves open (see docs/data.md):
- Pixel permutations move the colour channels together: they permute spatial positions
  (H*W), as the paper's reference code did; a pixel keeps its colour.
- `gaussian` draws every value from a normal distribution with the per-channel mean and
  variance of the training images.
- `shuffled-pixels` always applies its one permutation to the test images too (the paper).
  `random-pixels`, `gaussian` and the label corruptions touch the test split only with
  `corrupt_test=True`; by default test images and labels stay true.

Beyond the paper (docs/data.md, "Real human label noise"):
- `cifar10n-aggre|worst|random1|2|3`: the training labels replaced by CIFAR-10N human labels
  (Wei et al., ICLR 2022). `apply` takes them ready-aligned (`human=`); finding and lining
  them up with the images is rethink.data.cifar10n's job. They cover the training set only.
- `noise-matrix`: each label redrawn from row y of a class-transition matrix T (T[i, j] =
  P(noisy j | clean i)), independently per example, from the explicit generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rethink.errors import RethinkError

PAPER_KINDS = (
    "none", "partial-labels", "random-labels", "shuffled-pixels", "random-pixels", "gaussian"
)  # fmt: skip
HUMAN_KINDS = (
    "cifar10n-aggre", "cifar10n-worst", "cifar10n-random1", "cifar10n-random2", "cifar10n-random3"
)  # fmt: skip
KINDS = PAPER_KINDS + HUMAN_KINDS + ("noise-matrix",)
LABEL_KINDS = ("partial-labels", "random-labels")


@dataclass(frozen=True, eq=False)
class CorruptionResult:
    """Corrupted copies of the splits.

    x_*: same shape and dtype as given (gaussian: float32); y_*: int64.
    changed: bool (N_train,), True where a training example differs from the original
    (label changed, or image changed). realized_fraction: changed.mean(). test_changed: the
    same over the test set (all False unless the test split was corrupted).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    changed: torch.Tensor
    realized_fraction: float
    test_changed: torch.Tensor | None = None


def partial_labels(
    y: torch.Tensor, num_classes: int, p: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each label, independently with probability p, replaced by a class drawn uniformly from
    all `num_classes` (possibly the same one). Returns (new labels int64 (N,), changed (N,))."""
    n = len(y)
    replace = torch.rand(n, generator=generator) < p  # (N,)
    fresh = torch.randint(0, num_classes, (n,), generator=generator, dtype=torch.int64)
    out = torch.where(replace, fresh, y.to(torch.int64))
    return out, out != y


def random_labels(
    y: torch.Tensor, num_classes: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every label replaced by a uniform draw from all classes (partial labels with p = 1)."""
    return partial_labels(y, num_classes, 1.0, generator)


def noise_matrix(
    y: torch.Tensor, matrix: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each label y_n replaced by a draw from row y_n of the K x K row-stochastic `matrix`
    (row i = distribution of the noisy label given clean class i), independently per example.
    Returns (new labels int64 (N,), changed (N,))."""
    y = y.to(torch.int64)
    if len(y) == 0:
        return y.clone(), torch.zeros(0, dtype=torch.bool)
    rows = matrix.to(torch.float64)[y]  # (N, K)
    out = torch.multinomial(rows, 1, replacement=True, generator=generator).squeeze(1)
    return out, out != y


def _permute_positions(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) with spatial positions reordered: perm is (H*W,) or (N, H*W)."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    if perm.dim() == 1:
        return flat[:, :, perm].reshape(n, c, h, w)
    index = perm[:, None, :].expand(n, c, h * w)
    return flat.gather(2, index).reshape(n, c, h, w)


def shuffled_pixels(
    x_train: torch.Tensor, x_test: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One permutation of the H*W positions, the same for every train and test image.
    Returns (x_train, x_test, perm (H*W,))."""
    h, w = x_train.shape[-2:]
    perm = torch.randperm(h * w, generator=generator)
    return _permute_positions(x_train, perm), _permute_positions(x_test, perm), perm


def random_pixels(x: torch.Tensor, generator: torch.Generator, chunk: int = 8192) -> torch.Tensor:
    """An independent permutation of the H*W positions for each image (N, C, H, W)."""
    n, _, h, w = x.shape
    out = torch.empty_like(x)
    for start in range(0, n, chunk):  # chunks bound the (chunk, H*W) index memory
        stop = min(start + chunk, n)
        # float64 keys: ties (which would bias the order) have probability ~ (H*W)^2 / 2^54
        keys = torch.rand(stop - start, h * w, generator=generator, dtype=torch.float64)
        perms = keys.argsort(dim=1)
        out[start:stop] = _permute_positions(x[start:stop], perms)
    return out


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) standard deviation of x (N, C, H, W), each (C,)."""
    var, mean = torch.var_mean(x.to(torch.float32), dim=(0, 2, 3), unbiased=False)
    return mean, var.sqrt()


def gaussian(
    shape: tuple[int, ...], mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """float32 noise of `shape` (N, C, H, W), channel c drawn from N(mean[c], std[c]^2)."""
    z = torch.randn(shape, generator=generator, dtype=torch.float32)
    return z.mul_(std.view(1, -1, 1, 1)).add_(mean.view(1, -1, 1, 1))


def check(kind: str, p: float) -> float:
    """Validate a corruption name and probability; returns the p that will be used."""
    if kind not in KINDS:
        raise RethinkError(f"unknown corruption {kind!r}; choose one of {', '.join(KINDS)}.")
    if p is None:  # a spec leaves the probability unset where the corruption takes none
        p = 0.0
    if not isinstance(p, (int, float)) or math.isnan(p) or not 0.0 <= p <= 1.0:
        raise RethinkError(f"the corruption probability must lie in [0, 1], got {p}.")
    if kind == "partial-labels":
        return float(p)
    if kind == "random-labels":
        if p not in (0.0, 1.0):
            raise RethinkError(
                f"random-labels means p = 1 (got {p}); use partial-labels with a probability."
            )
        return 1.0
    if kind == "none" and p != 0.0:
        raise RethinkError(f"corruption none takes no probability (got {p}); use partial-labels.")
    if kind in HUMAN_KINDS + ("noise-matrix",):
        if p != 0.0:
            raise RethinkError(
                f"corruption {kind} takes no probability (got {p}); only partial-labels does."
            )
        return 0.0
    if p not in (0.0, 1.0):
        raise RethinkError(
            f"{kind} corrupts every image and takes no probability (got {p}); "
            "only partial-labels does."
        )
    return 0.0 if kind == "none" else 1.0


def _differs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) bool: which images of a differ from b (a shortcut when a is b)."""
    if a is b:
        return torch.zeros(len(a), dtype=torch.bool)
    return (a != b).reshape(len(a), -1).any(1)


def apply(
    kind: str,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    num_classes: int,
    generator: torch.Generator,
    p: float = 0.0,
    corrupt_test: bool = False,
    human: torch.Tensor | None = None,
    matrix: torch.Tensor | None = None,
) -> CorruptionResult:
    """Apply corruption `kind` (one of KINDS) to the splits; see the module docstring.

    x: (N, C, H, W) tensors (float for gaussian); y: int64 (N,). Draws come from `generator`,
    training split first. p is used by partial-labels only; `human` (int64 (N_train,), the
    CIFAR-10N labels of these training examples) by the cifar10n-* kinds only; `matrix`
    (K x K, row-stochastic) by noise-matrix only.
    """
    p = check(kind, p)
    if (human is not None) != (kind in HUMAN_KINDS):
        raise RethinkError(
            f"corruption {kind} needs the human labels of the training examples (human=...)."
            if human is None
            else f"corruption {kind} takes no human labels; only the cifar10n kinds do."
        )
    if (matrix is not None) != (kind == "noise-matrix"):
        raise RethinkError(
            "corruption noise-matrix needs a K x K transition matrix (matrix=...)."
            if matrix is None
            else f"corruption {kind} takes no matrix; only noise-matrix does."
        )
    xtr, ytr, xte, yte = x_train, y_train.to(torch.int64), x_test, y_test.to(torch.int64)
    if kind in HUMAN_KINDS:
        if corrupt_test:
            raise RethinkError(
                f"{kind} relabels the CIFAR-10 training images only; there are no human "
                "labels for the test split, so it cannot be combined with corrupt_test."
            )
        if tuple(human.shape) != tuple(ytr.shape):
            raise RethinkError(f"{kind}: {len(human)} human labels for {len(ytr)} examples.")
        ytr = human.to(torch.int64).clone()
    elif kind == "noise-matrix":
        k = num_classes
        if tuple(matrix.shape) != (k, k):
            raise RethinkError(
                f"the noise matrix is {'x'.join(map(str, matrix.shape))}; it must be "
                f"{k} x {k} for a {k}-class dataset."
            )
        ytr, _ = noise_matrix(ytr, matrix, generator)
        if corrupt_test:
            yte, _ = noise_matrix(yte, matrix, generator)
    elif kind in LABEL_KINDS:
        ytr, _ = partial_labels(ytr, num_classes, p, generator)
        if corrupt_test:
            yte, _ = partial_labels(yte, num_classes, p, generator)
    elif kind == "shuffled-pixels":
        xtr, xte, _ = shuffled_pixels(xtr, xte, generator)
    elif kind == "random-pixels":
        xtr = random_pixels(xtr, generator)
        if corrupt_test:
            xte = random_pixels(xte, generator)
    elif kind == "gaussian":
        mean, std = channel_stats(xtr)
        xtr = gaussian(tuple(xtr.shape), mean, std, generator)
        if corrupt_test:
            xte = gaussian(tuple(xte.shape), mean, std, generator)
    changed = (ytr != y_train) | _differs(xtr, x_train)
    test_changed = (yte != y_test) | _differs(xte, x_test)
    fraction = float(changed.float().mean()) if len(changed) else 0.0
    return CorruptionResult(xtr, ytr, xte, yte, changed, fraction, test_changed)
