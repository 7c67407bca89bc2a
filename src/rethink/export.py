"""Export a results store to the tools researchers already use.

    >>> from rethink.export import export
    >>> export("runs.db", "parquet", "out/")          # doctest: +SKIP
    [PosixPath('out/runs.parquet'), PosixPath('out/epochs.parquet')]

Formats (`FORMATS`):

- parquet (extra `rethink[parquet]`, pyarrow): runs.parquet and epochs.parquet;
- csv: runs.csv and epochs.csv, every column (none dropped);
- tensorboard (extra `rethink[tensorboard]`): one event directory per run,
  OUT/<sweep>/<run_id>, with every per-epoch scalar (step = epoch), the spec and provenance as
  text, and the spec as hparams with the final results as their metrics;
- mlflow (extra `rethink[mlflow]`, mlflow-skinny): a local file store OUT/mlruns, one
  experiment per sweep, one MLflow run per rethink run (params = flattened spec, metrics per
  epoch with step = epoch, tags = versions and provenance).

The runs table has one row per run: run_id, sweep, label, status, error, host, created /
started / finished (UTC timestamps), the spec flattened to dotted columns (`data.dataset`,
`train.lr`, ..., `seed`), `versions.<key>`, `provenance.<key>` (every key the store holds;
none for stores written before provenance existed) and `result.<key>` (the result row,
accuracies as fractions). The epochs table has one row per (run_id, epoch): the store's epoch
columns plus any extra per-epoch keys; a test metric is missing (NaN) on an epoch where the
test set was not evaluated. Exporting again into the same folder replaces what the previous
export of those runs wrote. See docs/export.md.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from rethink.errors import RethinkError
from rethink.store import EPOCH_COLUMNS, Store, flatten_spec

FORMATS = ("parquet", "csv", "tensorboard", "mlflow")
_EXTRA = {"parquet": ("pyarrow", "parquet"), "tensorboard": ("tensorboard", "tensorboard")}
_EXTRA["mlflow"] = ("mlflow", "mlflow")
_TIMES = ("created", "started", "finished")
NO_SWEEP = "(no sweep)"


# ---- frames -------------------------------------------------------------------------------
def _mapping(v: Any) -> dict[str, Any]:
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return {}
    return dict(v) if isinstance(v, dict) else {}


def _scalar(v: Any) -> Any:
    """Lists and dicts (e.g. a noise matrix) as JSON text; everything else as it is."""
    return json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, tuple)) else v


def run_row(run: dict[str, Any]) -> dict[str, Any]:
    """One store run (as Store.runs() gives it) as one flat row of columns."""
    row: dict[str, Any] = {
        k: run.get(k) for k in ("run_id", "sweep", "label", "status", "error", "host")
    }
    for t in _TIMES:
        row[t] = run.get(t)
    for k, v in run.items():  # any other column a newer store keeps
        if k not in row and k not in ("spec", "result", "versions", "provenance"):
            row[k] = _scalar(v)
    row.update({k: _scalar(v) for k, v in flatten_spec(run["spec"]).items()})
    for prefix in ("versions", "provenance"):
        for k, v in flatten_spec(_mapping(run.get(prefix))).items():
            row[f"{prefix}.{k}"] = _scalar(v)
    for k, v in (run.get("result") or {}).items():
        if k not in ("run_id", "status"):
            row[f"result.{k}"] = _scalar(v)
    return row


def _select(runs: list[dict], run_ids: list[str] | None, sweeps: list[str] | None) -> list:
    if sweeps:
        known = {r["sweep"] or NO_SWEEP for r in runs}
        missing = [s for s in sweeps if s not in known]
        if missing:
            raise RethinkError(
                f"the store has no sweep {missing[0]!r}; it has "
                f"{', '.join(sorted(known)) or 'no runs'}."
            )
        runs = [r for r in runs if (r["sweep"] or NO_SWEEP) in sweeps]
    if run_ids:
        chosen = []
        for want in run_ids:
            hits = [r for r in runs if r["run_id"].startswith(want)]
            if not hits:
                raise RethinkError(f"no run {want!r} in the store (see `rethink runs`).")
            if len(hits) > 1 and not any(r["run_id"] == want for r in hits):
                raise RethinkError(f"the run id prefix {want!r} matches {len(hits)} runs.")
            hit = next((r for r in hits if r["run_id"] == want), hits[0])
            if hit not in chosen:
                chosen.append(hit)
        runs = chosen
    return runs


def frames(
    store: Store | str | os.PathLike,
    run_ids: list[str] | None = None,
    sweeps: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """(runs, epochs, raw runs) of a store, only the given runs / sweeps if any."""
    own = not isinstance(store, Store)
    st = Store(store, readonly=True) if own else store
    try:
        raw = _select(st.runs(), run_ids, sweeps)
        epochs = []
        for r in raw:
            for e in st.epochs(r["run_id"]):
                epochs.append({k: _scalar(v) for k, v in e.items()})
    finally:
        if own:
            st.close()
    runs = _tidy([run_row(r) for r in raw])
    for t in _TIMES:
        if t in runs:
            runs[t] = pd.to_datetime(runs[t], unit="s", utc=True)
    ep = _tidy(epochs, first=("run_id", *EPOCH_COLUMNS))
    for col in EPOCH_COLUMNS[2:]:  # metrics are floats even when a store holds whole numbers
        ep[col] = ep[col].astype("float64")
    return runs, ep, raw


def _tidy(rows: list[dict[str, Any]], first: tuple[str, ...] = ()) -> pd.DataFrame:
    """A frame of `rows` (columns in order of appearance, `first` first) with one dtype per
    column from its values: bool, int (boolean / Int64 where some are missing), float or
    text."""
    cols = list(first)
    for r in rows:
        cols += [k for k in r if k not in cols]
    out = {}
    for col in cols:
        raw = [r.get(col) for r in rows]
        vals = [v for v in raw if v is not None and not (isinstance(v, float) and math.isnan(v))]
        full = len(vals) == len(raw)
        s = pd.Series(raw, dtype=object)
        if vals and all(isinstance(v, bool) for v in vals):
            out[col] = s.astype("bool" if full else "boolean")
        elif vals and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            out[col] = s.astype("int64" if full else "Int64")
        elif not vals or all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            out[col] = pd.to_numeric(s, errors="coerce").astype("float64")
        else:
            out[col] = s.map(lambda v: v if v is None else str(v))
    return pd.DataFrame(out, columns=cols)


# ---- writers ------------------------------------------------------------------------------
def _need(fmt: str):
    module, extra = _EXTRA[fmt]
    try:
        return __import__(module)
    except ImportError:
        raise RethinkError(
            f"exporting to {fmt} needs the optional extra {extra}: pip install 'rethink[{extra}]'."
        ) from None


def to_parquet(runs: pd.DataFrame, epochs: pd.DataFrame, out: Path) -> list[Path]:
    _need("parquet")
    paths = [out / "runs.parquet", out / "epochs.parquet"]
    runs.to_parquet(paths[0], engine="pyarrow", index=False)
    epochs.to_parquet(paths[1], engine="pyarrow", index=False)
    return paths


def to_csv(runs: pd.DataFrame, epochs: pd.DataFrame, out: Path) -> list[Path]:
    paths = [out / "runs.csv", out / "epochs.csv"]
    runs.to_csv(paths[0], index=False)
    epochs.to_csv(paths[1], index=False)
    return paths


def _run_dir(run: dict) -> str:
    sweep = run.get("sweep") or NO_SWEEP
    safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in sweep)
    return f"{safe}/{run['run_id']}"


def _hparam(v: Any) -> Any:
    if isinstance(v, (bool, int, float, str)):
        return v
    return "none" if v is None else json.dumps(v, sort_keys=True)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def to_tensorboard(raw: list[dict], epochs: pd.DataFrame, out: Path) -> list[Path]:
    _need("tensorboard")
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    paths = []
    for run in raw:
        logdir = out / _run_dir(run)
        if logdir.exists():  # a previous export of this run: replace it, never duplicate
            shutil.rmtree(logdir)
        ep = epochs[epochs["run_id"] == run["run_id"]]
        w = SummaryWriter(log_dir=str(logdir))
        try:
            t0 = run.get("started") or run.get("created") or 0.0
            wall = t0
            for rec in ep.to_dict("records"):
                wall += rec["seconds"] if _finite(rec.get("seconds")) else 0.0
                for tag, v in rec.items():
                    if tag not in ("run_id", "epoch") and _finite(v):
                        w.add_scalar(tag, v, global_step=int(rec["epoch"]), walltime=wall)
            spec = json.dumps(run["spec"], indent=2, sort_keys=True)
            w.add_text("spec", f"```\n{spec}\n```", global_step=0, walltime=t0)
            prov = {"versions": _mapping(run.get("versions"))}
            prov["provenance"] = _mapping(run.get("provenance"))
            prov.update({k: run.get(k) for k in ("run_id", "sweep", "label", "status", "host")})
            text = json.dumps(prov, indent=2, sort_keys=True)
            w.add_text("provenance", f"```\n{text}\n```", global_step=0, walltime=t0)
            result = run.get("result") or {}
            metrics = {f"result/{k}": float(v) for k, v in result.items() if _finite(v)}
            last = int(ep["epoch"].max()) if len(ep) else 0
            for tag, v in metrics.items():
                w.add_scalar(tag, v, global_step=last, walltime=wall)
            hp = {k: _hparam(v) for k, v in flatten_spec(run["spec"]).items()}
            for summary in hparams(hp, metrics):
                w.file_writer.add_summary(summary, walltime=t0)
        finally:
            w.close()
        paths.append(logdir)
    return paths


def _mlflow_status(status: str) -> str:
    return {"finished": "FINISHED", "diverged": "FINISHED", "failed": "FAILED"}.get(
        status, "KILLED"
    )


def _chunks(xs: list, n: int):
    for i in range(0, len(xs), n):
        yield xs[i : i + n]


def to_mlflow(raw: list[dict], epochs: pd.DataFrame, out: Path) -> list[Path]:
    _need("mlflow")
    # MLflow 3 keeps the file store behind an opt-in; the local `mlruns` folder is
    # still the store every MLflow version reads (mlflow ui --backend-store-uri DIR/mlruns).
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    root = out / "mlruns"
    root.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=root.resolve().as_uri())
    experiments: dict[str, str] = {}
    for run in raw:
        sweep = run.get("sweep") or NO_SWEEP
        if sweep not in experiments:
            exp = client.get_experiment_by_name(sweep)
            experiments[sweep] = exp.experiment_id if exp else client.create_experiment(sweep)
        eid = experiments[sweep]
        old = client.search_runs([eid], filter_string=f"tags.`rethink.run_id` = '{run['run_id']}'")
        for r in old:  # a previous export of this run: replace it
            client.delete_run(r.info.run_id)
        started = run.get("started") or run.get("created") or 0.0
        tags = {
            "rethink.run_id": run["run_id"],
            "rethink.sweep": sweep,
            "rethink.label": run.get("label") or "",
            "rethink.status": run["status"],
            "rethink.host": run.get("host") or "",
        }
        if run.get("error"):
            tags["rethink.error"] = str(run["error"])[:5000]
        for prefix in ("versions", "provenance"):
            for k, v in flatten_spec(_mapping(run.get(prefix))).items():
                tags[f"{prefix}.{k}"] = str(_scalar(v))
        mrun = client.create_run(
            eid,
            start_time=int(started * 1000),
            tags=tags,
            run_name=run.get("label") or run["run_id"],
        )
        rid = mrun.info.run_id
        params = [Param(k, str(_scalar(v))[:6000]) for k, v in flatten_spec(run["spec"]).items()]
        metrics = []
        ep = epochs[epochs["run_id"] == run["run_id"]]
        wall = started
        for rec in ep.to_dict("records"):
            wall += rec["seconds"] if _finite(rec.get("seconds")) else 0.0
            for k, v in rec.items():
                if k not in ("run_id", "epoch") and _finite(v):
                    metrics.append(Metric(k, float(v), int(wall * 1000), int(rec["epoch"])))
        last = int(ep["epoch"].max()) if len(ep) else 0
        for k, v in (run.get("result") or {}).items():
            if _finite(v):
                metrics.append(Metric(f"result.{k}", float(v), int(wall * 1000), last))
        for batch in _chunks(params, 100):
            client.log_batch(rid, params=batch)
        for batch in _chunks(metrics, 1000):
            client.log_batch(rid, metrics=batch)
        client.log_batch(rid, tags=[RunTag("mlflow.note.content", _note(run))])
        if run["status"] == "running":
            continue
        end = run.get("finished") or wall
        client.set_terminated(rid, status=_mlflow_status(run["status"]), end_time=int(end * 1000))
    return [root]


def _note(run: dict) -> str:
    return f"rethink run {run['run_id']} ({run.get('label') or 'no label'}): {run['status']}."


# ---- entry point --------------------------------------------------------------------------
def export(
    store: str | os.PathLike,
    to: str,
    out: str | os.PathLike,
    *,
    runs: list[str] | None = None,
    sweeps: list[str] | None = None,
) -> list[Path]:
    """Export `store` (only `runs`, run ids or unique prefixes, and / or `sweeps` if given) to
    format `to` in folder `out`; returns the files or folders written."""
    if to not in FORMATS:
        raise RethinkError(f"unknown export format {to!r}; use one of {', '.join(FORMATS)}.")
    if to in _EXTRA:
        _need(to)  # before reading anything: a missing extra is the first thing to say
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RethinkError(f"--out {out} is a file; give a folder to export into.")
    run_frame, epochs, raw = frames(store, runs, sweeps)
    if not raw:
        raise RethinkError(f"the store {store} has no runs to export.")
    out.mkdir(parents=True, exist_ok=True)
    if to == "parquet":
        return to_parquet(run_frame, epochs, out)
    if to == "csv":
        return to_csv(run_frame, epochs, out)
    if to == "tensorboard":
        return to_tensorboard(raw, epochs, out)
    return to_mlflow(raw, epochs, out)


__all__ = ["FORMATS", "export", "frames", "run_row", "to_csv", "to_parquet"]
