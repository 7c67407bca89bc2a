"""compute / score: the measures of a store's finished runs, kept in the store's own table.

The table `measures(run_id, measure, value, sample, seed, seconds, computed)` lives in the
same SQLite file (created here, CREATE TABLE IF NOT EXISTS), one row per run and measure; a
NULL value means the measure is undefined for that run (e.g. a margin measure when the 10th
percentile margin is not positive). A row is computed once; `force=True` recomputes.

For each run: the model is rebuilt from its stored spec with `rethink.runner.setup` (which
draws the initial weights from the run's seed: the initial weights are *rebuilt*, not
stored), the initial state_dict is copied, then the final checkpoint's weights are loaded.
The sample is a fixed, seeded subset of the run's training set as trained on (corrupted
labels where the run corrupted them): `sample` examples (default 1,000, or all if fewer),
the first of a permutation drawn from torch.Generator().manual_seed(seed) (default 0).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from rethink.errors import RethinkError
from rethink.measures import _flatness as FL
from rethink.measures import _norms as N
from rethink.measures._score import score_table
from rethink.store import Store

SAMPLE = 1000  # examples of the training set the margin measures use
FLAT_SAMPLE = 500  # the first this many of them: flatness, Hessian and gradient measures
SEED = 0  # the sample's permutation and every measure's noise draws
STEPS_TO_LOSS = 0.1  # steps_to_loss: the first epoch with training loss <= this

# name -> group: the group's function computes all of its measures at once
GROUPS: dict[str, tuple[str, ...]] = {
    "norms": (
        "params",
        "frobenius_sum",
        "log_frobenius_product",
        "log_spectral_product",
        "dist_init",
        "log_path_norm",
    ),
    "margin": (
        "inverse_margin",
        "log_spectral_product_over_margin",
        "log_frobenius_product_over_margin",
        "log_spectral_complexity_over_margin",
    ),
    "pacbayes": ("pacbayes_flatness",),
    "pacbayes_mag": ("pacbayes_mag_flatness",),
    "sharpness": ("sharpness",),
    "hessian_eig": ("hessian_top_eig",),
    "hessian_trace": ("hessian_trace",),
    "optimization": ("steps_to_fit", "steps_to_loss"),
    "grad_noise": ("grad_noise",),
}
MEASURES: tuple[str, ...] = tuple(m for ms in GROUPS.values() for m in ms)
_GROUP_OF = {m: g for g, ms in GROUPS.items() for m in ms}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS measures (
    run_id TEXT NOT NULL, measure TEXT NOT NULL, value REAL, sample INTEGER, seed INTEGER,
    seconds REAL, computed REAL, PRIMARY KEY (run_id, measure))
"""


def names() -> list[str]:
    """Every measure's name, in the order of docs/measures.md."""
    return list(MEASURES)


def _check_only(only: Sequence[str] | str | None) -> list[str]:
    if only is None:
        return list(MEASURES)
    if isinstance(only, str):
        only = [s for s in only.split(",")]
    chosen = [s.strip() for s in only if s.strip()]
    bad = [s for s in chosen if s not in MEASURES]
    if bad:
        raise RethinkError(f"unknown measure '{bad[0]}'; the measures are {', '.join(MEASURES)}.")
    if not chosen:
        raise RethinkError("--only names no measure; give one or more of " + ", ".join(MEASURES))
    return [m for m in MEASURES if m in chosen]


def _open(store: Store | str | os.PathLike) -> tuple[Store, bool]:
    if isinstance(store, Store):
        return store, False
    path = os.fspath(store)
    if not os.path.isfile(path):
        raise RethinkError(f"no store at {path}; run something first or give the right path.")
    return Store(path), True


def _ensure_table(st: Store) -> None:
    with st.db:
        st.db.execute(_SCHEMA)


def _select_runs(st: Store, runs: Sequence[str] | None) -> tuple[list[dict], list[str]]:
    """(usable runs, "run_id (why)" for each skipped one)."""
    all_runs = st.runs()
    if runs:
        by_id = {r["run_id"]: r for r in all_runs}
        chosen = [by_id[st.resolve(w)] for w in runs if w.strip()]
    else:
        chosen = all_runs
    usable, skipped = [], []
    for r in chosen:
        rid = r["run_id"]
        if r["status"] != "finished" or r.get("result") is None:
            skipped.append(f"{rid} (status {r['status']})")
        elif not st.checkpoint_path(rid).is_file():
            skipped.append(f"{rid} (no final checkpoint)")
        else:
            usable.append(r)
    return usable, skipped


def _plain_lrn(model: nn.Module) -> None:
    """Swap each LocalResponseNorm for PlainLRN: the model's own LRN has a hand-written,
    once-differentiable backward, and the Hessian measures differentiate twice."""
    from rethink.models import LocalResponseNorm

    for name, child in list(model.named_children()):
        if isinstance(child, LocalResponseNorm):
            setattr(model, name, N.PlainLRN(child))
        else:
            _plain_lrn(child)


def load_run(st: Store, run: dict[str, Any], device: str = "cpu"):
    """(model with the final weights, initial state_dict, prepared data, spec) of a run."""
    from rethink.runner import setup
    from rethink.spec import RunSpec

    path = st.checkpoint_path(run["run_id"])
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RethinkError(f"cannot read the checkpoint {path} ({err}).") from None
    if not isinstance(state, dict) or "model" not in state:
        raise RethinkError(f"{path} holds no model weights.")
    if state.get("run_id", run["run_id"]) != run["run_id"]:
        raise RethinkError(f"{path} belongs to another run ({state.get('run_id')}).")
    spec = RunSpec.from_dict(state.get("spec") or run["spec"])
    job = setup(spec, device=device)
    model = job.model
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state["model"])
    _plain_lrn(model)
    model.eval()
    return model, init, job.data, job.spec


def sample_of(data: Any, n: int = SAMPLE, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """(x (m, C, H, W), y (m,)) the first m = min(n, N) of a seeded permutation of the
    training set (the labels the run trained on)."""
    perm = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed))
    idx = perm[: min(n, len(perm))]
    return data.x_train[idx], data.y_train[idx]


def steps_to_loss(epochs: list[dict[str, Any]], threshold: float = STEPS_TO_LOSS) -> float:
    """The step count at the end of the first epoch whose training loss is <= threshold
    (NaN if none is)."""
    for e in epochs:
        loss = e.get("train_loss")
        if loss is not None and loss <= threshold:
            return float(e.get("step") or 0)
    return math.nan


def measure_run(
    st: Store,
    run: dict[str, Any],
    groups: Sequence[str],
    *,
    sample: int = SAMPLE,
    seed: int = SEED,
    flat_sample: int = FLAT_SAMPLE,
    device: str = "cpu",
    on_group: Callable[[str, float], None] | None = None,
) -> dict[str, tuple[float, float, int]]:
    """{measure: (value, seconds, examples)} for the given groups of one run (a group's time
    is split evenly over its measures; examples: the sample size the measure used).
    on_group(group, seconds) is called after each group (a progress display)."""
    model, init, data, spec = load_run(st, run, device)
    x, y = sample_of(data, sample, seed)
    dev = next(model.parameters()).device
    x, y = x.to(dev), y.to(dev)
    out: dict[str, tuple[float, float, int]] = {}
    norms: dict[str, float] = {}
    if "norms" in groups or "margin" in groups:  # the margin measures reuse the norms
        groups = ["norms", *[g for g in groups if g != "norms"]]
    for g in groups:
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(seed * 1000 + sum(map(ord, g)))
        if g == "norms":
            vals = norms = N.size_and_norms(model, init, x)
        elif g == "margin":
            vals = N.margin_measures(model, x, y, norms)
        elif g == "optimization":
            stf = (run["result"] or {}).get("steps_to_fit")
            vals = {
                "steps_to_fit": float(stf) if stf is not None else math.nan,
                "steps_to_loss": steps_to_loss(st.epochs(run["run_id"])),
            }
        else:  # the costly ones (a backward pass or many forwards each step): a smaller sample
            xs, ys = x[:flat_sample], y[:flat_sample]
            vals = {GROUPS[g][0]: _stochastic(g, model, xs, ys, spec.train.batch_size, gen)}
        public = {k: v for k, v in vals.items() if not k.startswith("_")}
        spent = time.perf_counter() - t0
        dt = spent / max(len(public), 1)
        used = {"norms": 0, "optimization": 0, "margin": len(y)}.get(g, min(flat_sample, len(y)))
        out.update({k: (v, dt, used) for k, v in public.items()})
        if on_group is not None:
            on_group(g, spent)
    return out


def _stochastic(g: str, model, x, y, batch_size: int, gen: torch.Generator) -> float:
    if g == "pacbayes":
        return _inv_sq(FL.pacbayes_sigma(model, x, y, generator=gen))
    if g == "pacbayes_mag":
        return _inv_sq(FL.pacbayes_sigma(model, x, y, generator=gen, magnitude=True))
    if g == "sharpness":
        return FL.sharpness(model, x, y)
    if g == "hessian_eig":
        return FL.hessian_top_eigenvalue(model, x, y, generator=gen)
    if g == "hessian_trace":
        return FL.hessian_trace(model, x, y, generator=gen)
    if g == "grad_noise":
        return FL.gradient_noise(model, x, y, batch_size, generator=gen)
    raise AssertionError(g)


def _inv_sq(sigma: float) -> float:
    return 1.0 / sigma**2 if sigma > 0 else math.inf


def _stored(st: Store) -> dict[tuple[str, str], float | None]:
    rows = st.db.execute("SELECT run_id, measure, value FROM measures").fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def _write(st: Store, rid: str, vals: dict[str, tuple[float, float, int]], seed: int) -> None:
    now = time.time()
    with st.db:
        st.db.executemany(
            "INSERT OR REPLACE INTO measures VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (rid, m, v if math.isfinite(v) else None, n, seed, s, now)
                for m, (v, s, n) in vals.items()
            ],
        )


def compute(
    store: Store | str | os.PathLike,
    runs: Sequence[str] | None = None,
    only: Sequence[str] | str | None = None,
    *,
    force: bool = False,
    sample: int = SAMPLE,
    flat_sample: int = FLAT_SAMPLE,
    seed: int = SEED,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Compute the missing (all with force) measures of every finished run with a final
    checkpoint (or of `runs`, run ids or unique prefixes) into the store's measures table;
    returns [{"run_id", "measure", "value"}, ...] for the selected runs and measures (value
    None where undefined). Raises RethinkError if no selected run can be measured, naming the
    skipped runs and why. `progress` gets one line per run (with an ETA)."""
    chosen = _check_only(only)
    if sample < 2 or flat_sample < 2:
        raise RethinkError(
            f"--sample and --flat-sample need at least 2 examples, not {min(sample, flat_sample)}."
        )
    st, owned = _open(store)
    try:
        _ensure_table(st)
        usable, skipped = _select_runs(st, runs)
        if not usable:
            why = "; ".join(skipped) if skipped else "the store holds no runs"
            raise RethinkError(f"no run in {st.path} can be measured (skipped: {why}).")
        say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
        if skipped:
            say(f"skipped {len(skipped)} runs: {'; '.join(skipped)}")
        have = {} if force else _stored(st)
        t_start, done_work = time.perf_counter(), 0
        todo = [(r, [m for m in chosen if (r["run_id"], m) not in have]) for r in usable]
        n_work = sum(1 for _, ms in todo if ms)
        for i, (r, missing) in enumerate(todo, 1):
            rid = r["run_id"]
            if not missing:
                say(f"[{i}/{len(todo)}] {rid}: all {len(chosen)} measures stored")
                continue
            groups = [g for g in GROUPS if any(_GROUP_OF[m] == g for m in missing)]
            t0 = time.perf_counter()
            vals = measure_run(
                st, r, groups, sample=sample, seed=seed, flat_sample=flat_sample, device=device
            )
            vals = {m: v for m, v in vals.items() if m in missing}
            _write(st, rid, vals, seed)
            done_work += 1
            elapsed = time.perf_counter() - t_start
            eta = elapsed / done_work * (n_work - done_work)
            label = r.get("label") or ""
            say(
                f"[{i}/{len(todo)}] {rid} {label}: {len(vals)} measures in "
                f"{time.perf_counter() - t0:.1f} s; ETA {_fmt_eta(eta)}"
            )
        stored = _stored(st)
        return [
            {"run_id": r["run_id"], "measure": m, "value": stored.get((r["run_id"], m))}
            for r in usable
            for m in chosen
        ]
    finally:
        if owned:
            st.close()


def _fmt_eta(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def score(
    store: Store | str | os.PathLike,
    runs: Sequence[str] | None = None,
    only: Sequence[str] | str | None = None,
) -> list[dict[str, Any]]:
    """Score the stored measures of the finished runs (or `runs`) against the gap
    (train_acc - test_acc), with random-label runs included and excluded; see
    rethink.measures._score.score_table for the keys. Reads only what compute stored."""
    chosen = _check_only(only)
    st, owned = _open(store)
    try:
        _ensure_table(st)
        usable, _ = _select_runs(st, runs)
        stored = _stored(st)
        rows = []
        for r in usable:
            res = r["result"]
            if res.get("train_acc") is None or res.get("test_acc") is None:
                continue
            row = {
                "run_id": r["run_id"],
                "spec": r["spec"],
                "gap": res["train_acc"] - res["test_acc"],
                "test_error": 1.0 - res["test_acc"],
            }
            for m in chosen:
                v = stored.get((r["run_id"], m))
                row[m] = math.nan if v is None else float(v)
            rows.append(row)
        return score_table(rows, chosen)
    finally:
        if owned:
            st.close()
