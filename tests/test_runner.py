"""The store-backed runner: round trip, skip, resume after SIGKILL, failures, bad input."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from rethink import runner
from rethink.errors import RethinkError
from rethink.spec import RunSpec
from rethink.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")


BASE = {"dataset": "digits", "train_size": 512, "model.name": "mlp-1x128", "lr": 0.05}


def _spec(**kw) -> RunSpec:
    return RunSpec.from_dict({**BASE, **kw})


def _metrics(rows):
    drop = ("seconds", "train_seconds", "eval_seconds", "run_id")
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def _digest(path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_round_trip_and_no_second_run(tmp_path):
    db = tmp_path / "runs.db"
    spec = _spec(max_epochs=4, checkpoint_every=2, labels="partial-labels", corrupt_prob=0.3)
    result = runner.run(spec, store=db, device="cpu")
    assert result["status"] == "finished" and result.get("resumed_from") is None
    with Store(db, readonly=True) as st:
        (row,) = st.runs()
        assert row["run_id"] == spec.run_id() == result["run_id"]
        assert RunSpec.from_dict(row["spec"]) == spec.normalized()
        epochs = st.epochs(spec.run_id())
        assert [e["epoch"] for e in epochs] == [0, 1, 2, 3, 4]
        assert "changed_acc" in epochs[-1] and "running_loss" in epochs[-1]
        stored = row["result"]
    for k in ("epochs", "train_acc", "test_acc", "best_test_acc", "params", "train_loss"):
        assert stored[k] == result[k]
    assert st.checkpoint_path(spec.run_id()).is_file()
    before = _digest(db)
    again = runner.run(spec, store=db, device="cpu")
    assert again["skipped"] is True and again["test_acc"] == result["test_acc"]
    assert _digest(db) == before


def _last_epoch(db, run_id):
    try:
        with Store(db, readonly=True) as st:
            return st.last_epoch(run_id)
    except RethinkError:  # not created yet, or its tables are being created
        return None


def test_a_run_killed_with_sigkill_resumes_to_identical_metrics(tmp_path):
    spec = _spec(labels="random-labels", max_epochs=12, checkpoint_every=2, augment="crop")
    killed_db, clean_db = tmp_path / "killed.db", tmp_path / "clean.db"
    script = textwrap.dedent(
        f"""
        import time, torch
        torch.set_num_threads(1)
        from rethink import runner
        from rethink.spec import RunSpec
        spec = RunSpec.from_dict({spec.to_dict()!r})
        # from epoch 6 on it waits to be killed: a slow test machine cannot let it finish
        runner.run(spec, store={str(killed_db)!r}, device="cpu",
                   on_epoch=lambda rec: time.sleep(0.1 if rec.epoch < 6 else 600))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    rid = spec.run_id()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            last = _last_epoch(killed_db, rid)
            if last is not None and last >= 5:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    with Store(killed_db, readonly=True) as st:
        assert st.get_run(rid)["status"] == "running"  # nobody closed it
        assert st.last_epoch(rid) < 12
    resumed = runner.run(spec, store=killed_db, device="cpu")
    assert resumed["resumed_from"] is not None and resumed["resumed_from"] >= 4
    clean = runner.run(spec, store=clean_db, device="cpu")
    with Store(killed_db, readonly=True) as a, Store(clean_db, readonly=True) as b:
        assert _metrics(a.epochs(rid)) == _metrics(b.epochs(rid))
        ra, rb = a.runs()[0]["result"], b.runs()[0]["result"]
    assert _metrics([ra])[0].keys() == _metrics([rb])[0].keys()
    for k in ("epochs", "train_acc", "test_acc", "train_loss", "test_loss", "best_test_acc"):
        assert ra[k] == rb[k] == clean[k] == resumed[k]


def test_diverged_run_is_stored_and_not_rerun(tmp_path):
    db = tmp_path / "runs.db"
    spec = _spec(lr=1e6, max_epochs=10)
    r = runner.run(spec, store=db, device="cpu")
    assert r["status"] == "diverged" and r["diverged_epoch"] >= 1
    with Store(db, readonly=True) as st:
        assert st.get_run(spec.run_id())["status"] == "diverged"
    assert runner.run(spec, store=db, device="cpu")["skipped"] is True


def test_an_exception_marks_the_run_failed(tmp_path, monkeypatch):
    db = tmp_path / "runs.db"
    spec = _spec(max_epochs=3)

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(runner, "fit", boom)
    with pytest.raises(RuntimeError):
        runner.run(spec, store=db, device="cpu")
    with Store(db, readonly=True) as st:
        row = st.get_run(spec.run_id())
    assert row["status"] == "failed" and row["error"] == "RuntimeError: disk on fire second line"


def test_ctrl_c_marks_the_run_interrupted_and_it_resumes(tmp_path):
    db = tmp_path / "runs.db"
    spec = _spec(max_epochs=6, checkpoint_every=1)

    def interrupt(rec):
        if rec.epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run(spec, store=db, device="cpu", on_epoch=interrupt)
    with Store(db, readonly=True) as st:
        assert st.get_run(spec.run_id())["status"] == "interrupted"
    r = runner.run(spec, store=db, device="cpu")
    assert r["status"] == "finished" and r["resumed_from"] == 2 and r["epochs"] == 6


@pytest.mark.parametrize(
    "changes",
    [
        {"model.name": "no-such-model"},
        {"dataset": "no-such-dataset"},
        {"lr": -0.1},
        {"train_size": 10**7},
    ],
)
def test_bad_input_leaves_the_store_as_it_was(tmp_path, changes):
    db = tmp_path / "runs.db"
    with pytest.raises(RethinkError):
        runner.run(_spec(**changes), store=db, device="cpu")
    assert not db.exists() and not (tmp_path / "runs.db.ckpt").exists()
    runner.run(_spec(max_epochs=1), store=db, device="cpu")
    before = _digest(db)
    with pytest.raises(RethinkError):
        runner.run(_spec(**changes), store=db, device="cpu")
    assert _digest(db) == before


def test_unknown_device_is_one_sentence():
    with pytest.raises(RethinkError, match="device"):
        runner.execute(_spec(), device="tpu")
