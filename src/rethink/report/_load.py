"""Read a store into pandas frames; the report's only source. Imports nothing from training.

`runs` has one row per run: run_id, sweep, label, status, error, every spec field flattened
("data.dataset", "train.lr", ..., "seed"), every result column prefixed "r." (fractions), and
derived columns: model, dataset, kind, p (label-corruption probability, NaN for pixel
corruptions), crop, flip, wd, dropout, config (the spec without its seed, as JSON: runs that
differ only by seed share it). `epochs` has one row per (run_id, epoch).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

from rethink.store import Store, flatten_spec


def load_frames(
    store: Store | str | os.PathLike,
    sweeps: list[str] | None = None,
    run_ids: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, epochs) frames of a store, only the given sweeps and run_ids if any."""
    own = not isinstance(store, Store)
    st = Store(store, readonly=True) if own else store
    try:
        runs = st.runs()
        if sweeps:
            runs = [r for r in runs if r["sweep"] in sweeps]
        if run_ids is not None:
            keep = set(run_ids)
            runs = [r for r in runs if r["run_id"] in keep]
        ids = {r["run_id"] for r in runs}
        epochs = [e for e in st.all_epochs() if e["run_id"] in ids]
    finally:
        if own:
            st.close()
    return _runs_frame(runs), pd.DataFrame(epochs)


def _runs_frame(runs: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for r in runs:
        spec = r["spec"]
        row: dict[str, Any] = {
            "run_id": r["run_id"],
            "sweep": r["sweep"] or "(no sweep)",
            "label": r["label"] or "",
            "status": r["status"],
            "error": r["error"],
            "spec_json": json.dumps(spec, indent=1, sort_keys=True),
        }
        row.update(flatten_spec(spec))
        for k, v in (r["result"] or {}).items():
            if k != "run_id" and not isinstance(v, (dict, list)):
                row[f"r.{k}"] = v
        no_seed = {k: v for k, v in spec.items() if k != "seed"}
        row["config"] = json.dumps(no_seed, sort_keys=True)
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["model"] = df["model.name"]
    df["dataset"] = df["data.dataset"]
    df["kind"] = df["corruption.kind"]
    label_kinds = df["kind"].isin(["none", "partial-labels", "random-labels"])
    df["p"] = df["corruption.prob"].where(label_kinds)
    df["crop"] = df["train.augment"].str.contains("crop")
    df["flip"] = df["train.augment"].str.contains("flip")
    df["wd"] = df["train.weight_decay"] > 0
    df["dropout"] = df["model.dropout"] > 0
    return df
