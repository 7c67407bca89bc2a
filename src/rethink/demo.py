"""The demo: the paper's Fig. 1a in miniature, on CPU, in about a minute.

`rethink demo` is the `demo` scale of the fig1a preset run through the same sweep and report
code as every preset (`rethink reproduce fig1a --scale demo`): five runs on mnist-5k (4,000
training and 1,000 test images of MNIST, packaged offline), true labels, random labels,
shuffled pixels, random pixels and Gaussian inputs, each trained until it fits by an MLP 1x512
at a constant lr 0.1 (calibrated on the real data: docs/training.md). It writes a store and
the report (Fig. 1a with its loss on a log axis, tables, report.html) and returns one result
per setting.

    >>> from rethink.demo import run_demo
    >>> out = run_demo("demo")                        # doctest: +SKIP
    >>> [r["epochs_to_fit"] for r in out["runs"]]     # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

PRESET, SCALE = "fig1a", "demo"


def run_demo(
    out_dir: str | os.PathLike = "demo",
    *,
    device: str = "auto",
    data_dir=None,
    seed: int = 0,
    threads: int | None = None,
    on_event: Callable[..., None] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or resume, or reuse) the five runs into out_dir/runs.db and write the report into
    out_dir. Returns {"store", "figure", "report", "runs": [{"setting", "run_id", **result}]}."""
    from rethink.report import write_report
    from rethink.report._names import corruption_name
    from rethink.store import Store
    from rethink.sweep import load_sweep, preset_path, run_sweep

    out = Path(out_dir)
    plan = load_sweep(
        preset_path(PRESET), scale=SCALE, overrides={"seed": seed, **(overrides or {})}
    )
    store = out / "runs.db"
    run_sweep(plan, store, data_dir=data_dir, device=device, on_event=on_event, threads=threads)
    files = write_report(store, out, sweeps=[plan.name], run_ids=[r.run_id for r in plan.runs])
    with Store(store, readonly=True) as st:
        results = {r["run_id"]: r for r in st.runs()}
    rows = []
    for r in plan.runs:
        stored = results.get(r.run_id) or {}
        res = stored.get("result") or {}
        rows.append(
            {
                "setting": corruption_name(r.spec.corruption.kind),
                "run_id": r.run_id,
                **res,
                "status": stored.get("status"),
            }
        )
    figure = next((str(p) for p in files if p.name.endswith("fig1a.png")), None)
    return {"store": str(store), "figure": figure, "report": str(out / "report.html"),
            "runs": rows}  # fmt: skip
