"""Killing a sweep (SIGKILL or SIGINT) and starting it again finishes every run exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from rethink.store import Store
from rethink.sweep import load_sweep, run_sweep

# Enough work (about 2 s of training on an idle 2-core box) that the kill lands mid-sweep;
# with less, an idle machine finished the whole sweep before the test could see a checkpoint.
EPOCHS = 40
SWEEP = f"""
name = "killme"
[base]
data = {{ dataset = "digits" }}
model = {{ name = "mlp-1x64" }}
train = {{ max_epochs = {EPOCHS}, batch_size = 8, lr = 0.05, checkpoint_every = 2 }}
[axes]
labels = ["none", "random-labels", "gaussian"]
"""


def _start(f, db, jobs: int) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "rethink",
        "sweep",
        str(f),
        "--store",
        str(db),
        "--jobs",
        str(jobs),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(proc: subprocess.Popen, db, timeout: float = 120.0) -> None:
    """Until some run has a checkpoint and at least one more epoch (mid-run, mid-sweep)."""
    ckpts = db.with_name(db.name + ".ckpt")
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()
        if db.exists() and any(ckpts.glob("*.pt")):
            try:
                with sqlite3.connect(db) as c:
                    n = c.execute("SELECT COUNT(*) FROM epochs").fetchone()[0]
                    done = c.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.Error:
                n, done = 0, 0
            if n >= 4 and done < 3:  # a run in flight holds a checkpoint
                return
        time.sleep(0.05)
    pytest.fail("the sweep never wrote a checkpoint")


def _check_complete(db, plan) -> dict[str, float]:
    with Store(db, readonly=True) as st:
        runs = st.runs()
        assert sorted(r["run_id"] for r in runs) == sorted(r.run_id for r in plan.runs)
        assert all(r["status"] == "finished" for r in runs)
        assert len(st.results()) == len(plan.runs)
        out = {}
        for r in runs:
            eps = st.epochs(r["run_id"])
            assert [e["epoch"] for e in eps] == list(range(EPOCHS + 1))  # none missing, none twice
            assert [e["step"] for e in eps] == sorted(e["step"] for e in eps)
            out[r["run_id"]] = eps[-1]["train_loss"]
        return out


@pytest.mark.parametrize("jobs", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_sigkill_then_restart_finishes_each_run_once(tmp_path, jobs):
    f = tmp_path / "killme.toml"
    f.write_text(SWEEP)
    plan = load_sweep(f)
    db = tmp_path / "k.db"
    proc = _start(f, db, jobs)
    _wait_for_checkpoint(proc, db)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    with Store(db, readonly=True) as st:
        assert any(r["status"] == "running" for r in st.runs())  # left mid-run
    time.sleep(0.5)  # the workers die with the driver (PR_SET_PDEATHSIG)
    summary = run_sweep(plan, db, jobs=jobs)
    assert summary.failed == 0 and summary.finished + summary.skipped == len(plan)
    resumed = _check_complete(db, plan)
    # the same sweep never interrupted computes the same numbers (resume is exact)
    reference = tmp_path / "ref.db"
    run_sweep(plan, reference, jobs=jobs)
    assert resumed == pytest.approx(_check_complete(reference, plan), rel=1e-5)


@pytest.mark.slow
def test_sigint_marks_interrupted_and_resumes(tmp_path):
    f = tmp_path / "killme.toml"
    f.write_text(SWEEP)
    db = tmp_path / "i.db"
    proc = _start(f, db, 2)
    _wait_for_checkpoint(proc, db)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again" in err
    with Store(db, readonly=True) as st:
        statuses = {r["status"] for r in st.runs()}
    assert "interrupted" in statuses and "running" not in statuses
    plan = load_sweep(f)
    summary = run_sweep(plan, db, jobs=2)
    assert summary.failed == 0
    _check_complete(db, plan)
