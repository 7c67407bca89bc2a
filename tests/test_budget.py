"""A time budget (--stop-after / stop_after=): runs stop at an epoch end, checkpointed, and
resume to the same numbers as a run that was never stopped; a sweep starts nothing after it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from _cli import run_cli

from rethink import lifecycle, runner
from rethink.cli._budget import STOPPED, parse_duration
from rethink.errors import RethinkError
from rethink.spec import RunSpec
from rethink.store import Store
from rethink.sweep import _driver, plan_from_dict, run_sweep

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "data": {"dataset": "digits", "train_size": 300},
    "model": {"name": "mlp-1x32"},
    "train": {"max_epochs": 6, "lr": 0.05, "checkpoint_every": 4},
}
SWEEP = {
    "name": "budget",
    "base": TINY,
    "axes": {"labels": ["none", "random-labels", "gaussian"]},
}


@pytest.mark.parametrize(
    "text,seconds",
    [("90", 90), ("90s", 90), ("45m", 2700), ("2h30m", 9000), ("1.5h", 5400), ("1d", 86400),
     (" 1h 2m 3s ", 3723), ("0", 0), ("0.25", 0.25), (".5m", 30)],
)  # fmt: skip
def test_durations_parse_to_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-1", "-5m", "inf", "nan", "2x", "h", "2h30", "m5", "1e400"])
def test_bad_durations_are_one_sentence(text):
    with pytest.raises(RethinkError, match="--stop-after takes a duration"):
        parse_duration(text)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "1h", True])
def test_the_python_budget_is_checked_before_anything_is_written(tmp_path, bad):
    db = tmp_path / "r.db"
    with pytest.raises(RethinkError, match="time budget"):
        runner.run(RunSpec.from_dict(TINY), store=db, device="cpu", stop_after=bad)
    with pytest.raises(RethinkError, match="time budget"):
        run_sweep(plan_from_dict(SWEEP), db, stop_after=bad)
    assert not db.exists()


def _epochs(db, run_id):
    with Store(db, readonly=True) as st:
        return [e["epoch"] for e in st.epochs(run_id)]


def _ckpt_epoch(db, run_id):
    with Store(db, readonly=True) as st:
        path = st.checkpoint_path(run_id)
    return torch.load(path, weights_only=True)["epoch"]


def test_run_stops_at_its_budget_checkpointed_and_resumes_to_the_same_numbers(tmp_path, capsys):
    args = ["run", "--dataset", "digits", "--train-size", "300", "--model", "mlp-1x32", "--lr",
            "0.05", "--max-epochs", "6", "--checkpoint-every", "4", "--threads", "1"]  # fmt: skip
    db = tmp_path / "r.db"
    code, out, err = run_cli([*args, "--store", str(db), "--stop-after", "0"], capsys)
    assert code == STOPPED
    assert "stopped at the time budget" in out + err and "run the same command again" in out + err
    run_id = RunSpec.from_dict(TINY).normalized().run_id()
    with Store(db, readonly=True) as st:
        assert st.get_run(run_id)["status"] == "interrupted"
    # stopped after epoch 0, which is checkpointed although checkpoint_every is 4
    assert _epochs(db, run_id) == [0] and _ckpt_epoch(db, run_id) == 0
    code, out, err = run_cli([*args, "--store", str(db)], capsys)
    assert code == 0 and "Traceback" not in err
    assert _epochs(db, run_id) == list(range(7))
    code, _, _ = run_cli([*args, "--store", str(tmp_path / "clean.db")], capsys)
    with Store(db, readonly=True) as a, Store(tmp_path / "clean.db", readonly=True) as b:
        resumed, clean = a.epochs(run_id), b.epochs(run_id)
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "step")
    assert [[e[k] for k in keys] for e in resumed] == [[e[k] for k in keys] for e in clean]


def test_bad_stop_after_on_the_command_line_writes_nothing(tmp_path, capsys):
    db = tmp_path / "r.db"
    for cmd in (
        ["run", "--dataset", "digits", "--model", "mlp-1x32", "--store", str(db)],
        ["sweep", "fig1a", "--scale", "smoke", "--store", str(db)],
        ["reproduce", "fig1a", "--scale", "smoke", "--store", str(db), "--out", str(tmp_path)],
    ):
        code, out, err = run_cli([*cmd, "--stop-after", "soon"], capsys)
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "--stop-after takes a duration" in lines[0]
    assert not db.exists()


class _Clock:
    """Wall-clock time for the budget code only; the test moves it past the deadline."""

    def __init__(self):
        self.now = 1_000_000.0

    def time(self):
        return self.now


def test_a_sweep_stops_its_run_in_flight_and_starts_no_other_then_resumes(tmp_path, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(lifecycle, "time", clock)
    monkeypatch.setattr(_driver, "time", clock)
    plan = plan_from_dict(SWEEP)
    first = plan.runs[0].run_id

    def on_event(kind, run, **kw):
        if kind == "epoch" and kw["record"]["epoch"] == 2:
            clock.now += 3600  # the budget is spent during epoch 2 of the first run

    db = tmp_path / "s.db"
    s = run_sweep(plan, db, jobs=1, device="cpu", stop_after=60, on_event=on_event)
    assert (s.interrupted, s.pending, s.finished) == (1, 2, 0)
    assert s.statuses == {first: "interrupted", **{r.run_id: "pending" for r in plan.runs[1:]}}
    with Store(db, readonly=True) as st:
        assert [r["run_id"] for r in st.runs()] == [first]  # nothing written for the others
        assert st.get_run(first)["status"] == "interrupted"
    assert _epochs(db, first) == [0, 1, 2] and _ckpt_epoch(db, first) == 2

    monkeypatch.undo()
    s = run_sweep(plan, db, jobs=1, device="cpu")
    assert s.finished == 3 and s.pending == 0
    clean = tmp_path / "clean.db"
    run_sweep(plan, clean, jobs=1, device="cpu")
    with Store(db, readonly=True) as a, Store(clean, readonly=True) as b:
        for r in plan.runs:
            assert [e["epoch"] for e in a.epochs(r.run_id)] == list(range(7))
            ours = [(e["train_loss"], e["test_acc"]) for e in a.epochs(r.run_id)]
            assert ours == [(e["train_loss"], e["test_acc"]) for e in b.epochs(r.run_id)]
        assert a.get_run(first)["provenance"]["attempts"][1]["from_epoch"] == 2


def test_worker_processes_stop_at_the_budget_and_the_sweep_exits_3(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(
        'name = "budget"\n[base]\ndata = { dataset = "digits" }\nmodel = { name = "mlp-1x64" }\n'
        "train = { max_epochs = 2000, batch_size = 8, lr = 0.05, checkpoint_every = 100 }\n"
        '[axes]\nlabels = ["none", "random-labels", "gaussian"]\n'
    )
    db = tmp_path / "s.db"
    cmd = [sys.executable, "-m", "rethink", "sweep", str(toml), "--store", str(db),
           "--jobs", "2", "--threads", "1"]  # fmt: skip
    p = subprocess.run([*cmd, "--stop-after", "8s"], capture_output=True, text=True, timeout=300)
    assert p.returncode == STOPPED, p.stderr
    assert "stopped at the time budget" in p.stderr and "Traceback" not in p.stderr
    with Store(db, readonly=True) as st:
        runs = st.runs()
        assert runs and len(runs) <= 2  # at most the two that started before the budget
        for r in runs:
            assert r["status"] == "interrupted"
            eps = [e["epoch"] for e in st.epochs(r["run_id"])]
            assert eps == list(range(len(eps))) and eps[-1] < 2000
            assert _ckpt_epoch(db, r["run_id"]) == eps[-1]  # nothing computed is lost


def test_reproduce_stopped_by_its_budget_writes_no_report(tmp_path, capsys):
    out = tmp_path / "rep"
    argv = ["reproduce", "fig1a", "--scale", "smoke", "--out", str(out), "--stop-after", "0"]
    code, stdout, err = run_cli(argv, capsys)
    assert code == STOPPED and "Traceback" not in err
    assert "no report yet" in stdout and "5 not started" in stdout.replace("\n", " ")
    assert not (out / "report.html").exists()
    with Store(out / "runs.db", readonly=True) as st:
        assert st.runs() == []  # a budget spent before the first run: nothing started
