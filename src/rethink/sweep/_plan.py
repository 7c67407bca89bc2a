"""Sweep files: a base spec plus axes (and explicit `[[include]]` variants) -> a list of runs.

A sweep file is TOML:

    name = "fig1bc"                          # the store's `sweep` column (default: file stem)
    description = "..."                      # optional, shown by the report
    [base]                                   # a spec: nested tables or dotted keys
    data = { dataset = "fashion-mnist", train_size = 2000 }
    train.max_epochs = 40
    [axes]                                   # every combination, in file order
    "corruption.prob" = [0.0, 0.5, 1.0]
    seed = [0, 1]
    [[include]]                              # optional variants, each crossed with the axes
    label = "MLP 1x512, random labels"
    "model.name" = "mlp-1x512"
    "corruption.kind" = "random-labels"
    [scales.smoke]                           # optional named scales: overrides of the above
    base = { "train.max_epochs" = 2 }        # merged over [base]
    axes = { seed = [0] }                    # replaces the axes it names
    # include = [...]                        # replaces the include list

Each axis combination is applied over the base, then each variant over that (an explicit
variant wins over an axis that sets the same key). A scale can drop an axis with `key = []`.
Runs whose specs normalize to the same run_id are kept once, in order. Nothing here touches a
store or trains.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rethink.errors import RethinkError
from rethink.spec import RunSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_TOP_KEYS = {"name", "description", "command", "expect", "runtime", "base", "axes", "include"}
_SCALE_KEYS = {"description", "command", "expect", "runtime", "base", "axes", "include"}
PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"  # shipped in the wheel


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its normalized spec, run_id and a short human label."""

    run_id: str
    spec: RunSpec
    label: str


@dataclass
class SweepPlan:
    """A sweep expanded into runs; `name` goes into the store's `sweep` column."""

    name: str
    runs: list[PlannedRun]
    scale: str | None = None
    description: str = ""
    meta: dict[str, str] = field(default_factory=dict)  # command / expect / runtime notes
    source: str = ""

    def __len__(self) -> int:
        return len(self.runs)


def load_sweep(
    path: str | Path, *, scale: str | None = None, overrides: dict[str, Any] | None = None
) -> SweepPlan:
    """Read and expand a sweep file; every problem is one RethinkError sentence.
    `overrides` (dotted keys, as `--set`) apply to every run, over base, axes and variants."""
    p = Path(path)
    if not p.is_file():
        raise RethinkError(f"no sweep file at {p}.")
    try:
        doc = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise RethinkError(f"{p} is not valid TOML ({err}).") from None
    try:
        return plan_from_dict(doc, name=p.stem, scale=scale, source=str(p), overrides=overrides)
    except RethinkError as err:
        raise RethinkError(f"{p}: {err}") from None


def preset_path(name: str) -> Path:
    """The file of a named preset (fig1a, fig1bc, table1, table4, fig2) or a path as given."""
    p = Path(name)
    if p.suffix == ".toml" and p.is_file():
        return p
    candidate = PRESET_DIR / f"{name}.toml"
    if candidate.is_file():
        return candidate
    known = sorted(f.stem for f in PRESET_DIR.glob("*.toml")) if PRESET_DIR.is_dir() else []
    raise RethinkError(f"unknown preset '{name}'; known presets: {', '.join(known) or 'none'}.")


def plan_from_dict(
    doc: dict[str, Any],
    *,
    name: str = "sweep",
    scale: str | None = None,
    source: str = "",
    overrides: dict[str, Any] | None = None,
) -> SweepPlan:
    """Expand a parsed sweep document (see the module docstring) into a SweepPlan."""
    unknown = set(doc) - _TOP_KEYS - {"scales"}
    if unknown:
        raise RethinkError(
            f"unknown sweep key '{sorted(unknown)[0]}'; a sweep file has "
            f"{', '.join(sorted(_TOP_KEYS | {'scales'}))}."
        )
    base = _table(doc.get("base", {}), "base")
    axes = _table(doc.get("axes", {}), "axes")
    include = _include_list(doc.get("include", []))
    meta = {k: str(doc[k]) for k in ("command", "expect", "runtime") if k in doc}
    description = str(doc.get("description", ""))
    scales = _table(doc.get("scales", {}), "scales")
    if scales and scale is None:
        scale = "cpu" if "cpu" in scales else next(iter(scales))
    if scale is not None:
        if scale not in scales:
            have = ", ".join(scales) or "none"
            raise RethinkError(f"this sweep has no scale '{scale}'; its scales are: {have}.")
        sc = _table(scales[scale], f"scales.{scale}")
        bad = set(sc) - _SCALE_KEYS
        if bad:
            raise RethinkError(
                f"unknown key '{sorted(bad)[0]}' in [scales.{scale}]; "
                f"use {', '.join(sorted(_SCALE_KEYS))}."
            )
        base = {**_flat(base), **_flat(_table(sc.get("base", {}), f"scales.{scale}.base"))}
        axes = {**axes, **_table(sc.get("axes", {}), f"scales.{scale}.axes")}
        axes = {k: v for k, v in axes.items() if v != []}  # `key = []` drops an axis
        if "include" in sc:
            include = _include_list(sc["include"])
        meta.update({k: str(sc[k]) for k in ("command", "expect", "runtime") if k in sc})
        description = str(sc.get("description", description))
    sweep_name = str(doc.get("name", name)) + (f"-{scale}" if scale else "")
    runs = expand(base, axes, include, overrides)
    return SweepPlan(sweep_name, runs, scale, description, meta, source)


def expand(
    base: dict[str, Any],
    axes: dict[str, Any],
    include: list[dict[str, Any]] | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[PlannedRun]:
    """Every (variant, axis combination) as a PlannedRun, first occurrence of each run_id;
    `overrides` apply last, to every run."""
    base_spec = RunSpec().override(base)
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise RethinkError(f"axis '{key}' must be a non-empty list of values.")
    variants = include or [{}]
    keys = list(axes)
    runs: dict[str, PlannedRun] = {}
    for variant in variants:
        variant = dict(variant)
        vlabel = variant.pop("label", None)
        for combo in itertools.product(*(axes[k] for k in keys)):
            setting = dict(zip(keys, combo, strict=True))
            spec = base_spec.override(setting).override(variant).override(overrides or {})
            spec = _checked(spec)
            rid = spec.run_id()
            if rid in runs:
                continue
            parts = [str(vlabel)] if vlabel else []
            # name only the axis values the run really has (a variant may override an axis)
            parts += [f"{k}={_fmt(v)}" for k, v in setting.items() if _has(spec, k, v)]
            runs[rid] = PlannedRun(rid, spec, " ".join(parts) or spec.describe())
    return list(runs.values())


def _has(spec: RunSpec, key: str, value: Any) -> bool:
    return spec.override({key: value}).normalized() == spec


def _checked(spec: RunSpec) -> RunSpec:
    spec = spec.normalized()
    from rethink.models import default_lr

    default_lr(spec.model.name)  # raises RethinkError for an unknown model name
    _check_dataset(spec.data.dataset)
    return spec


def _check_dataset(name: str) -> None:
    if not name or ":" in name:  # missing: normalized() said so; PATH / module refs: later
        return
    try:
        from rethink.data import names as dataset_names
    except ImportError:  # the data package does not list names: it will say so at run time
        return
    known = list(dataset_names())
    if name not in known:
        raise RethinkError(f"unknown dataset '{name}'; valid datasets are {', '.join(known)}.")


def _table(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise RethinkError(f"'{where}' must be a table, got {type(v).__name__}.")
    return v


def _include_list(v: Any) -> list[dict[str, Any]]:
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise RethinkError("'include' must be a list of tables ([[include]] entries).")
    return v


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested spec tables -> dotted keys, so a scale can override one field of a section."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and not prefix:
            out.update(_flat(v, f"{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
