"""The Ray backend on a real local Ray cluster (skipped when ray is not installed)."""

from __future__ import annotations

import pytest

from rethink.store import Store
from rethink.sweep import plan_from_dict, run_sweep

pytestmark = pytest.mark.ray


def test_ray_backend_runs_the_sweep_and_only_the_driver_writes(tmp_path):
    pytest.importorskip("ray")
    doc = {
        "name": "ray",
        "base": {
            "data": {"dataset": "digits", "train_size": 200},
            "model": {"name": "mlp-1x32"},
            "train": {"max_epochs": 3, "lr": 0.05, "checkpoint_every": 1},
        },
        "axes": {
            "labels": ["none", "random-labels"],
            "data.dataset": ["digits", "imagefolder:/no/such"],
        },
    }
    plan = plan_from_dict(doc)
    db = tmp_path / "ray.db"
    summary = run_sweep(plan, db, jobs=2, backend="ray")
    assert summary.finished == 2 and summary.failed == 2, summary.errors
    with Store(db, readonly=True) as st:
        for r in st.runs():
            if r["status"] == "finished":
                assert [e["epoch"] for e in st.epochs(r["run_id"])] == [0, 1, 2, 3]
                assert r["result"]["epochs"] == 3
            else:
                assert "does not exist" in r["error"]
