"""`rethink dynamics ...`: per-example records of a run (export) and what they say (scores)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import typer

from rethink.cli import app
from rethink.errors import RethinkError

dynamics_app = typer.Typer(
    help="Memorization dynamics: per-example records (train.record_examples) and their scores.",
    no_args_is_help=True,
)
app.add_typer(dynamics_app, name="dynamics")

_STORE = typer.Argument(..., help="A results store (.db) written by run or sweep.")


def export_records(store: str | os.PathLike, run: str, out: str | os.PathLike) -> dict:
    """Write a run's records to `out` (.npz); returns what was written. Arrays: correct,
    margin, loss, pred (epochs, examples), row i = epoch epochs[i]; epochs, changed, labels,
    clean_labels (and threshold, when the run has threshold samples)."""
    import numpy as np

    from rethink.dynamics import _records
    from rethink.store import Store

    with Store(store, readonly=True) as st:
        run_id = st.resolve(run)
        rec = _records.load(st.db, run_id)
    arrays = {k: rec[k] for k in ("correct", "margin", "loss", "pred", "epochs", "changed")}
    arrays.update(labels=rec["labels"], clean_labels=rec["clean_labels"])
    if rec["threshold"].any():
        arrays["threshold"] = rec["threshold"]
    out = Path(out)
    if out.suffix != ".npz":
        raise RethinkError(f"--out must name a .npz file, got {out}.")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a plain file is what is wanted
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    e, n = rec["correct"].shape
    return {"run_id": run_id, "out": str(out), "epochs": e, "examples": n}


@dynamics_app.command("export")
def export_command(
    store: str = _STORE,
    run: str = typer.Argument(..., help="A run_id (or a unique prefix of one)."),
    out: str = typer.Option(..., "--out", "-o", help="The .npz file to write."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Write a run's per-example records (correct, margin, loss, pred; each epochs x examples)
    and its labels, true labels and changed mask to one .npz file."""
    info = export_records(store, run, out)
    if as_json:
        print(json.dumps(info))
    else:
        print(
            f"wrote {info['out']}: {info['epochs']} epochs x {info['examples']} examples "
            f"of run {info['run_id']}"
        )


def _fmt(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


@dynamics_app.command("scores")
def scores_command(
    store: str = _STORE,
    runs: list[str] = typer.Option(  # noqa: B008  (typer's way to declare a repeatable option)
        None, "--runs", help="Only these runs (run_ids or unique prefixes; repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """For every run with records: how well each score (first-learned and learned-for-good
    epoch, forgetting events, confidence, variability, correctness, AUM) singles out the
    changed labels: ROC-AUC and precision at the true noise rate."""
    from rethink.dynamics.scores import store_scores
    from rethink.store import Store

    ids = None
    if runs:
        with Store(store, readonly=True) as st:
            ids = [st.resolve(r) for r in runs]
    result = store_scores(store, ids)
    if as_json:
        print(json.dumps({"runs": _finite(result)}))
        return
    for r in result:
        s = r["summary"]
        print(
            f"{r['run_id']}  {r['label']}: {s['examples']} examples, {s['epochs']} epochs "
            f"recorded, noise rate {s['noise_rate']:.3f}, unforgettable {s['unforgettable']} "
            f"({s['unforgettable_changed']} changed), never learned {s['never_learned']}"
        )
        if not r["detection"]:
            print("  no changed labels to detect (all clean or all changed)")
            continue
        print(f"  {'score':<42} {'flags':<6} {'ROC-AUC':>8} {'P@noise':>8}")
        for row in r["detection"]:
            if row["flags"] == "rule":
                print(
                    f"  {row['score']:<42} {'':<6} precision {_fmt(row['rule_precision'])}"
                    f" recall {_fmt(row['rule_recall'])}"
                )
            else:
                print(
                    f"  {row['score']:<42} {row['flags']:<6} {_fmt(row['roc_auc']):>8} "
                    f"{_fmt(row['precision_at_noise_rate']):>8}"
                )


def _finite(v):
    """JSON-safe: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
