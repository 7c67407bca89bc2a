"""RunSpec: everything that decides what a run computes, validated, normalized and hashed.

A spec is four frozen sections plus a seed. Two specs that compute the same thing normalize to
the same dict and so hash to the same `run_id` (an lr left at the model's paper default equals
the same lr written out; `random-labels` always has prob 1.0). Where a run executes (device,
store path, data folder) is not part of the spec.

Specs come from Python (`RunSpec(...)`), from nested dicts / TOML tables (`RunSpec.from_dict`),
and from dotted overrides (`spec.override({"train.lr": 0.1})`, also by the unique short name
`lr`). Unknown keys, wrong types, non-finite numbers and out-of-range values raise
RethinkError. There are no silent defaults for what a run is about: a spec names its dataset
and its model, and a corruption parameter given to a corruption that does not use it is an
error.

This module is the base layer: it imports neither torch nor the model zoo, so a spec
validates, normalizes and hashes without any training code. The one per-model default (the
paper's learning rate) is resolved here, by `default_lr`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from rethink.errors import RethinkError

# Bump when the meaning of a field changes; it is part of the hash. 2: `paper` schedule decays
# per 50,000 examples seen (was: per epoch, now `paper-epoch`), corruption.prob / matrix only
# where used, train.record_examples.
SPEC_VERSION = 2

CORRUPTIONS = (
    "none",
    "partial-labels",
    "random-labels",
    "shuffled-pixels",
    "random-pixels",
    "gaussian",
    # real human label noise: the CIFAR-10N re-annotations (cifar10 / cifar10-jpeg only)
    "cifar10n-aggre",
    "cifar10n-worst",
    "cifar10n-random1",
    "cifar10n-random2",
    "cifar10n-random3",
    # synthetic class-dependent noise drawn from a transition matrix (corruption.matrix)
    "noise-matrix",
)
PREPROCESS = ("standardize", "paper", "unit")
SCHEDULES = ("constant", "paper", "paper-epoch", "exponential", "step", "cosine")
AUGMENTS = ("none", "crop", "flip", "crop+flip")
TEST_EVALS = ("spaced", "every-epoch", "ends")
PRECISIONS = ("fp32", "bf16")
OPTIMIZERS = ("sgd",)
# Epoch caps when max_epochs is left unset. Calibrated (docs/training.md): an MLP 1x512 at a
# constant lr 0.01 fits random labels on 4,000 MNIST images in 93 epochs, 4,000 / 10,000
# Fashion-MNIST images in 116 / 142 epochs, so --until-fit needs more room than 100.
DEFAULT_MAX_EPOCHS = 100
UNTIL_FIT_MAX_EPOCHS = 500


# What each corruption takes besides its kind: prob (partial-labels), matrix (noise-matrix).
LABEL_NOISE = ("partial-labels", "random-labels", "noise-matrix") + tuple(
    k for k in CORRUPTIONS if k.startswith("cifar10n-")
)
USES_PROB = ("partial-labels",)
USES_MATRIX = ("noise-matrix",)
PAPER_DECAY_EXAMPLES = 50_000  # `paper`: lr x0.95 per 50,000 examples seen (CIFAR-10's epoch)


@dataclass(frozen=True)
class DataSpec:
    dataset: str | None = None  # required: a name from `rethink data list` (or module:function)
    train_size: int | None = None  # stratified, seeded subset of the training split
    subset_seed: int = 0  # the subset stays fixed while `seed` varies
    preprocess: str = "standardize"  # standardize | paper (crop 28 + per-image whitening) | unit


@dataclass(frozen=True)
class CorruptionSpec:
    kind: str = "none"
    prob: float | None = None  # partial-labels only (required there): chance of a redraw
    corrupt_test: bool = False  # apply label/pixel corruptions to the test split too
    # noise-matrix only: a human noise's name (e.g. "cifar10n-worst": its class-transition
    # matrix) or the path of a K x K row-stochastic matrix (.npy or .csv)
    matrix: str | None = None
    # AUM's threshold samples (Pleiss et al. 2020): floor(N / (K + 1)) training examples moved
    # to an extra class K after the corruption; the model gets K + 1 outputs
    threshold_samples: bool = False


@dataclass(frozen=True)
class ModelSpec:
    name: str | None = None  # required: a name from `rethink models` (or module:function)
    dropout: float = 0.0  # probability; 0 means no dropout layers


@dataclass(frozen=True)
class TrainSpec:
    optimizer: str = "sgd"
    lr: float | None = None  # None: the model's paper default (0.1 Inception, 0.01 otherwise)
    momentum: float = 0.9
    batch_size: int = 128
    # constant | paper (x0.95 per 50,000 examples) | paper-epoch (x0.95 per epoch of this
    # training set) | exponential | step | cosine   (rethink.schedules)
    schedule: str = "constant"
    lr_decay_per_epoch: float = 0.95  # paper, paper-epoch, exponential: the factor
    step_epochs: int = 30  # step: lr *= step_gamma every step_epochs epochs
    step_gamma: float = 0.1
    weight_decay: float = 0.0
    augment: str = "none"  # none | crop (pad 4, random crop) | flip | crop+flip
    max_epochs: int | None = None  # None: 100, or UNTIL_FIT_MAX_EPOCHS with until_fit
    until_fit: bool = False  # stop once a full eval pass over the training set is 100% correct
    fit_loss: float | None = None  # ... or once the training loss is below this
    checkpoint_every: int = 5  # epochs between checkpoints (and one at the end)
    record_examples: bool = False  # per-example records (correct, margin, loss, pred) per epoch
    # which epochs evaluate the test split: every-epoch | spaced (every epoch to 10, then
    # every 5th to 50, then every 10th) | ends (none between); always epoch 0, the fit epoch,
    # a divergence and the last. The training split is evaluated every epoch either way
    # (docs/training.md)
    test_eval: str = "every-epoch"
    precision: str = "fp32"  # fp32 | bf16 (bf16 autocast, CUDA only)


@dataclass(frozen=True)
class RunSpec:
    data: DataSpec = field(default_factory=DataSpec)
    corruption: CorruptionSpec = field(default_factory=CorruptionSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    seed: int = 0  # model init, batch order, augmentation, dropout, corruption draw

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        """Build from a nested dict (TOML tables) and/or dotted keys; validates types."""
        return cls().override(d)

    def override(self, changes: dict[str, Any]) -> RunSpec:
        """A copy with `changes` applied: nested dicts, dotted keys or unique short names."""
        spec = self
        for key, value in _flatten(changes).items():
            section, name = _resolve_key(key)
            spec = _set(spec, section, name, value)
        return spec

    # ---- identity -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def normalized(self) -> RunSpec:
        """Validated, with defaults resolved, so equal computations have equal specs."""
        validate(self)
        s = self
        if s.train.lr is None:
            s = replace(s, train=replace(s.train, lr=default_lr(s.model.name)))
        c = s.corruption
        prob = c.prob if c.kind in USES_PROB else (1.0 if c.kind == "random-labels" else 0.0)
        s = replace(s, corruption=replace(c, prob=float(prob)))
        if not s.train.until_fit:
            s = replace(s, train=replace(s.train, fit_loss=None))
        if s.train.max_epochs is None:
            cap = UNTIL_FIT_MAX_EPOCHS if s.train.until_fit else DEFAULT_MAX_EPOCHS
            s = replace(s, train=replace(s.train, max_epochs=cap))
        return s

    def run_id(self) -> str:
        """16 hex digits of the SHA-256 of the normalized spec's canonical JSON (plus, for a
        user's own model or dataset given as module:function, a digest of its source, so two
        different functions never share a run id)."""
        payload: dict[str, Any] = {"v": SPEC_VERSION, **self.normalized().to_dict()}
        code = _code_digests(self)
        if code:
            payload["code"] = code
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def describe(self) -> str:
        """A short human label, e.g. 'mnist-5k mlp-1x512 random-labels seed=0'."""
        c = self.corruption
        kind = c.kind
        if c.kind == "partial-labels" and c.prob is not None:
            kind = f"{c.kind}(p={c.prob:g})"
        elif c.kind == "noise-matrix":
            kind = f"{c.kind}({c.matrix})"
        return f"{self.data.dataset} {self.model.name} {kind} seed={self.seed}"


_SECTIONS = {"data": DataSpec, "corruption": CorruptionSpec, "model": ModelSpec, "train": TrainSpec}
# Convenience names for CLI flags and sweep axes; each must be unique across sections.
_ALIASES = {
    "dataset": ("data", "dataset"),
    "train_size": ("data", "train_size"),
    "subset_seed": ("data", "subset_seed"),
    "preprocess": ("data", "preprocess"),
    "corrupt_prob": ("corruption", "prob"),
    "corrupt_test": ("corruption", "corrupt_test"),
    "labels": ("corruption", "kind"),
    "dropout": ("model", "dropout"),
}


def _short_names() -> dict[str, tuple[str, str]]:
    seen: dict[str, list[tuple[str, str]]] = {}
    for sec, cls in _SECTIONS.items():
        for f in fields(cls):
            seen.setdefault(f.name, []).append((sec, f.name))
    out = {k: v[0] for k, v in seen.items() if len(v) == 1}
    out.update(_ALIASES)
    return out


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        raise RethinkError(f"a spec must be a table of settings, got {type(d).__name__}.")
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key in _SECTIONS:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _resolve_key(key: str) -> tuple[str | None, str]:
    norm = key.replace("-", "_")
    if norm == "seed":
        return None, "seed"
    if "." in norm:
        sec, _, name = norm.partition(".")
        cls = _SECTIONS.get(sec)
        if cls is None or name not in {f.name for f in fields(cls)}:
            raise RethinkError(f"unknown spec key '{key}'; {_known_keys_hint()}")
        return sec, name
    short = _short_names()
    if norm in short:
        return short[norm]
    raise RethinkError(f"unknown spec key '{key}'; {_known_keys_hint()}")


def _known_keys_hint() -> str:
    keys = ["seed"] + [f"{s}.{f.name}" for s, c in _SECTIONS.items() for f in fields(c)]
    return "known keys: " + ", ".join(keys) + "."


def _set(spec: RunSpec, section: str | None, name: str, value: Any) -> RunSpec:
    if section is None:
        return replace(spec, seed=_coerce("seed", int, value))
    sec_obj = getattr(spec, section)
    ftype = {f.name: f.type for f in fields(sec_obj)}[name]
    return replace(
        spec, **{section: replace(sec_obj, **{name: _coerce(f"{section}.{name}", ftype, value)})}
    )


def _coerce(key: str, ftype: Any, value: Any) -> Any:
    t = ftype if isinstance(ftype, str) else getattr(ftype, "__name__", str(ftype))
    optional = "None" in t
    if value is None:
        if optional:
            return None
        raise RethinkError(f"spec key '{key}' needs a value, not null.")
    base = t.replace("| None", "").strip()
    if base == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise RethinkError(f"spec key '{key}' must be true or false, got {value!r}.")
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise RethinkError(f"spec key '{key}' must be an integer, got {value!r}.")
        if isinstance(value, int):
            return int(value)
        try:
            f = float(value)
        except (ValueError, OverflowError):
            raise RethinkError(f"spec key '{key}' must be an integer, got {value!r}.") from None
        if not math.isfinite(f) or not f.is_integer():
            raise RethinkError(f"spec key '{key}' must be an integer, got {value!r}.")
        return int(f)
    if base == "float":
        if isinstance(value, bool):
            raise RethinkError(f"spec key '{key}' must be a number, got {value!r}.")
        try:
            f = float(value)
        except (TypeError, ValueError, OverflowError):
            raise RethinkError(f"spec key '{key}' must be a number, got {value!r}.") from None
        if not math.isfinite(f):
            raise RethinkError(f"spec key '{key}' must be a finite number, got {value!r}.")
        return f
    if base == "str":
        if not isinstance(value, str):
            raise RethinkError(f"spec key '{key}' must be a string, got {value!r}.")
        return value
    raise AssertionError(f"unhandled spec field type {t}")


def default_lr(model_name: str) -> float:
    """The paper's SGD learning rate for a model: 0.1 for the Inception nets, 0.01 for the
    rest (Zhang et al., Appendix A). The one place per-model defaults are resolved."""
    return 0.1 if model_name in ("inception-small", "inception-small-nobn") else 0.01


def derive_seed(seed: int, stream: str) -> int:
    """An independent 63-bit seed for one named random stream of a run: 'init', 'order'
    (batch order and augmentation), 'dropout', 'corruption', 'subset'. The one helper every
    random stream is derived with."""
    digest = hashlib.sha256(f"{int(seed)}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _code_digests(spec: RunSpec) -> dict[str, str]:
    """Source digests of users' models and datasets: module:function refs and entry points
    (rethink.plugins)."""
    from rethink.plugins import spec_code  # torch-free for built-in names

    code = spec_code(spec.model.name, spec.data.dataset)  # refs and entry points
    return {k: v["source_sha256"] for k, v in code.items()}


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise RethinkError(f"unknown {key} '{value}'; choose one of: {', '.join(allowed)}.")


def _names(kind: str) -> str:
    """The known dataset or model names, for an error message (imports the registry)."""
    try:
        if kind == "dataset":
            from rethink.data import names
        else:
            from rethink.models import names
        return ", ".join(names())
    except Exception:  # pragma: no cover - the registries import torch
        return "see rethink data list / rethink models"


def validate(spec: RunSpec) -> None:
    """Raise RethinkError (one sentence) for any value no run could use."""
    d, c, m, t = spec.data, spec.corruption, spec.model, spec.train
    if not d.dataset:
        raise RethinkError(f"no dataset given (data.dataset); choose one of: {_names('dataset')}.")
    if not m.name:
        raise RethinkError(f"no model given (model.name); choose one of: {_names('model')}.")
    _choice("corruption", c.kind, CORRUPTIONS)
    _choice("preprocess", d.preprocess, PREPROCESS)
    _choice("schedule", t.schedule, SCHEDULES)
    _choice("augment", t.augment, AUGMENTS)
    _choice("optimizer", t.optimizer, OPTIMIZERS)
    _choice("test_eval", t.test_eval, TEST_EVALS)
    _choice("precision", t.precision, PRECISIONS)
    if c.kind in USES_PROB and c.prob is None:
        raise RethinkError(f"corruption {c.kind} needs corruption.prob (--corrupt-prob).")
    implied = 1.0 if c.kind == "random-labels" else 0.0
    if c.kind not in USES_PROB and c.prob is not None and c.prob != implied:
        raise RethinkError(
            f"corruption {c.kind} takes no probability (corruption.prob = {c.prob:g}); "
            "only partial-labels does."
        )
    if c.kind in USES_MATRIX and not c.matrix:
        raise RethinkError(
            f"corruption {c.kind} needs corruption.matrix (a CIFAR-10N noise name such as "
            "cifar10n-worst, or the path of a K x K row-stochastic matrix)."
        )
    if c.kind.startswith("cifar10n-") and c.corrupt_test:
        raise RethinkError(
            f"corruption {c.kind} has human labels for the training split only; "
            "drop corruption.corrupt_test."
        )
    if c.kind not in USES_MATRIX and c.matrix is not None:
        raise RethinkError(f"corruption {c.kind} takes no matrix; only noise-matrix does.")
    checks = [
        (d.train_size is None or d.train_size > 0, "data.train_size must be positive"),
        (d.subset_seed >= 0, "data.subset_seed must not be negative"),
        (spec.seed >= 0, "seed must not be negative"),
        (c.prob is None or 0.0 <= c.prob <= 1.0, "corruption.prob must be between 0 and 1"),
        (0.0 <= m.dropout < 1.0, "model.dropout must be in [0, 1)"),
        (t.lr is None or t.lr > 0, "train.lr must be positive"),
        (0.0 <= t.momentum < 1.0, "train.momentum must be in [0, 1)"),
        (t.batch_size > 0, "train.batch_size must be positive"),
        (0.0 < t.lr_decay_per_epoch <= 1.0, "train.lr_decay_per_epoch must be in (0, 1]"),
        (t.step_epochs > 0, "train.step_epochs must be positive"),
        (0.0 < t.step_gamma <= 1.0, "train.step_gamma must be in (0, 1]"),
        (t.weight_decay >= 0.0, "train.weight_decay must not be negative"),
        (t.max_epochs is None or t.max_epochs > 0, "train.max_epochs must be positive"),
        (t.fit_loss is None or t.fit_loss > 0, "train.fit_loss must be positive"),
        (t.checkpoint_every > 0, "train.checkpoint_every must be positive"),
    ]
    for ok, message in checks:
        if not ok:
            raise RethinkError(message + ".")
