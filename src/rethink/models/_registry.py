"""The model registry: every model is built by name from the input shape and class count.

A model family registers a builder with `@register_model("alexnet-small")` or, for a family
parametrised by its name, with a pattern:
`@register_model("mlp-<D>x<W>", pattern=r"mlp-(\\d+)x(\\d+)", examples=("mlp-1x512",))`.
The builder receives `(input_shape, num_classes, dropout, *groups)` where `groups` are the
pattern's captured integers. Models know nothing of data
sources: the dataset supplies `input_shape = (C, H, W)` and `num_classes`.

A name that is no registered model may name a user's own builder: a `module:function`
reference, or an entry point of group `rethink.models` (see rethink.plugins, docs/plugins.md).
Such a builder takes `(input_shape, num_classes, dropout)` and returns an `nn.Module`;
registered names win over entry points of the same name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from rethink import plugins
from rethink.errors import RethinkError

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class _Entry:
    name: str  # as listed, e.g. "alexnet-small" or "mlp-<D>x<W>"
    builder: Builder
    default_lr: float  # SGD learning rate of the paper's recipe (momentum 0.9, batch 128)
    notes: str
    regex: re.Pattern[str] | None  # None: the name must match exactly
    examples: tuple[str, ...]  # concrete names listed by `describe` for a pattern entry


_ENTRIES: list[_Entry] = []


def register_model(
    name: str,
    *,
    default_lr: float = 0.01,
    notes: str = "",
    pattern: str | None = None,
    examples: tuple[str, ...] = (),
) -> Callable[[Builder], Builder]:
    """Decorator: register `builder(input_shape, num_classes, dropout, *ints) -> nn.Module`."""

    def deco(builder: Builder) -> Builder:
        if any(e.name == name for e in _ENTRIES):
            raise ValueError(f"model {name!r} is registered twice")
        regex = re.compile(pattern) if pattern is not None else None
        _ENTRIES.append(_Entry(name, builder, default_lr, notes, regex, tuple(examples)))
        return builder

    return deco


def names() -> list[str]:
    """Every registered name, patterns included ("mlp-<D>x<W>", "resnet18-k<K>"), sorted."""
    return sorted(e.name for e in _ENTRIES)


USER_DEFAULT_LR = 0.01  # a user's own model: the paper's lr for every model but Inception


def _builtin(name: str) -> tuple[_Entry, tuple[int, ...]] | None:
    for e in _ENTRIES:
        if e.regex is None and e.name == name:
            return e, ()
    for e in _ENTRIES:
        if e.regex is not None:
            m = e.regex.fullmatch(name)
            if m:
                return e, tuple(int(g) for g in m.groups())
    return None


def is_builtin(name: str) -> bool:
    """True if `name` is one of rethink's own models (a pattern family's member included)."""
    return isinstance(name, str) and _builtin(name) is not None


def _user_entry(name: str, ref: str) -> _Entry:
    builder = plugins.resolve(ref, "model")
    notes = "your own model" if ref == name else f"entry point -> {ref}"
    return _Entry(name, builder, USER_DEFAULT_LR, notes, None, ())


def _lookup(name: str) -> tuple[_Entry, tuple[int, ...]]:
    if not isinstance(name, str):
        raise RethinkError(f"a model name must be a string, not {type(name).__name__}.")
    found = _builtin(name)
    if found is not None:
        return found
    ref = plugins.user_ref("model", name)
    if ref is not None:
        return _user_entry(name, ref), ()
    extra = sorted(plugins.entry_points("model"))
    valid = ", ".join(names() + [n for n in extra if not is_builtin(n)])
    raise RethinkError(
        f"unknown model {name!r}; valid models are {valid}, or module:function for your own."
    )


def _check_shape(input_shape: object) -> tuple[int, int, int]:
    try:
        shape = tuple(int(s) for s in input_shape)  # type: ignore[union-attr]
        ok = len(shape) == 3 and all(s >= 1 for s in shape)
        ok = ok and all(int(s) == s for s in input_shape)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise RethinkError(
            f"input shape must be three positive integers (C, H, W), not {input_shape!r}."
        )
    return shape  # type: ignore[return-value]


def build(
    name: str,
    input_shape: tuple[int, int, int] = (3, 28, 28),
    num_classes: int = 10,
    *,
    dropout: float = 0.0,
    seed: int | None = None,
) -> nn.Module:
    """Build model `name` for inputs of shape (B, C, H, W) and `num_classes` logits (B, K).

    `dropout` is the drop probability of the model's dropout layers (0: none are built).
    `seed` makes the initial weights reproducible without touching the global RNG (the
    weights are drawn inside `torch.random.fork_rng`); None draws from the global RNG.
    Raises RethinkError for an unknown name or an input the model cannot take.
    """
    entry, ints = _lookup(name)
    shape = _check_shape(input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise RethinkError(f"the number of classes must be an integer >= 2, not {num_classes!r}.")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise RethinkError(f"dropout must be a probability in [0, 1), not {dropout!r}.")
    if not 0.0 <= float(dropout) < 1.0:
        raise RethinkError(f"dropout must be a probability in [0, 1), not {dropout!r}.")
    user = entry.regex is None and not is_builtin(name)
    if user:
        plugins.check_call(entry.builder, name, "model", shape, num_classes, float(dropout))
    if seed is None:
        return _call(entry, name, user, shape, num_classes, float(dropout), ints)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return _call(entry, name, user, shape, num_classes, float(dropout), ints)


def _call(entry: _Entry, name: str, user: bool, shape, num_classes, dropout, ints) -> nn.Module:
    if not user:
        return entry.builder(shape, num_classes, dropout, *ints)
    try:
        model = entry.builder(shape, num_classes, dropout)
    except RethinkError:
        raise
    except Exception as err:
        detail = " ".join(str(err).split()) or "no message"
        raise RethinkError(f"model {name} raised {type(err).__name__}: {detail}.") from None
    if not isinstance(model, nn.Module):
        what = plugins.with_article(type(model).__name__)
        raise RethinkError(f"model {name} returned {what}, not a torch.nn.Module.")
    _check_output(model, name, shape, num_classes)
    return model


def _check_output(model: nn.Module, name: str, shape, num_classes: int) -> None:
    """One forward pass of two zero inputs in eval mode: the output must be (2, num_classes).
    (Inside the seeded block of `build`, so lazy layers initialise reproducibly.)"""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros((2, *shape)))
    except Exception as err:
        detail = " ".join(str(err).split()) or "no message"
        raise RethinkError(
            f"model {name} cannot take inputs of shape (B, {', '.join(map(str, shape))}): "
            f"{type(err).__name__}: {detail}."
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise RethinkError(
            f"model {name} returned outputs of shape {got} for 2 inputs; "
            f"it must return logits of shape (B, {num_classes})."
        )


def default_lr(name: str) -> float:
    """The paper's SGD learning rate for `name`: 0.1 for small Inception, 0.01 otherwise
    (a user's own model included)."""
    return _lookup(name)[0].default_lr


def count_params(module: nn.Module) -> int:
    """Number of scalar parameters (each shared tensor counted once; buffers not counted)."""
    return sum(p.numel() for p in module.parameters())


def describe(
    input_shape: tuple[int, int, int] = (3, 28, 28), num_classes: int = 10
) -> list[dict[str, object]]:
    """One dict per concrete model (pattern families by their examples), sorted by name:
    {"name", "params", "default_lr", "notes"} for the given input shape and classes; then one
    per entry point of group `rethink.models` (params None, with the reason in notes, where it
    cannot be built for this input)."""
    rows: list[dict[str, object]] = []
    for e in _ENTRIES:
        for name in e.examples if e.regex is not None else (e.name,):
            model = build(name, input_shape, num_classes, seed=0)
            rows.append(
                {
                    "name": name,
                    "params": count_params(model),
                    "default_lr": e.default_lr,
                    "notes": e.notes,
                }
            )
    rows.sort(key=lambda r: _natural(str(r["name"])))
    return rows + _entry_point_rows(input_shape, num_classes)


def _entry_point_rows(input_shape, num_classes) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for name, ep in sorted(plugins.entry_points("model").items()):
        if is_builtin(name):
            notes, params = f"entry point -> {ep.value}: shadowed by the built-in, unused", None
        else:
            try:
                params = count_params(build(name, input_shape, num_classes, seed=0))
                notes = f"entry point -> {ep.value}"
            except RethinkError as err:
                params, notes = None, f"entry point -> {ep.value}: {err}"
        rows.append({"name": name, "params": params, "default_lr": USER_DEFAULT_LR,
                     "notes": notes})  # fmt: skip
    return rows


def _natural(name: str) -> list[object]:
    # "resnet18-k4" before "resnet18-k16": digit runs compare as numbers.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
