"""Progress displays: exact plain lines off a terminal, ETA arithmetic, quiet, rich and tqdm."""

from __future__ import annotations

import io

import pytest

from rethink.errors import RethinkError
from rethink.progress import (
    RunProgress,
    SweepProgress,
    format_duration,
    resolve_mode,
    run_eta,
    run_progress,
    schedule_eta,
)


def _rec(epoch, seconds=2.0, test_acc=0.5):
    return {
        "epoch": epoch,
        "step": 10 * epoch,
        "train_loss": 2.0 / (epoch + 1),
        "train_acc": 0.1 * epoch,
        "test_loss": None if test_acc is None else 1.5,
        "test_acc": test_acc,
        "lr": 0.01,
        "seconds": seconds,
    }


_RESULT = {"epochs": 3, "epochs_to_fit": 3, "test_acc": 0.4211, "seconds": 185.0}


def test_run_plain_lines_exactly():
    s = io.StringIO()
    with RunProgress("mlp rl", 10, stream=s) as p:  # a StringIO is not a TTY: plain
        assert p.mode == "plain"
        p.start(None)
        p.epoch(_rec(0, seconds=0.5))
        p.epoch(_rec(1, seconds=2.0))
        p.epoch(_rec(2, seconds=4.0, test_acc=None))  # test not evaluated this epoch
        p.end("finished", _RESULT)
    assert s.getvalue().splitlines() == [
        "mlp rl: started, at most 10 epochs",
        "mlp rl: epoch 0/10  train loss 2.0000 acc 0.00%  test loss 1.5000 acc 50.00%  0.5s  eta -",
        "mlp rl: epoch 1/10  train loss 1.0000 acc 10.00%  test loss 1.5000 acc 50.00%  2.0s"
        "  eta 18s",
        "mlp rl: epoch 2/10  train loss 0.6667 acc 20.00%  test loss - acc -  4.0s  eta 24s",
        "mlp rl: finished, 3 epochs, fit at epoch 3, test acc 42.11%, 3m05s",
    ]


def test_resumed_run_says_from_which_epoch():
    s = io.StringIO()
    p = RunProgress("x", 5, stream=s, mode="plain")
    p.start(resumed_from=3)
    p.epoch(_rec(4, seconds=10.0))
    p.close()
    lines = s.getvalue().splitlines()
    assert lines[0] == "x: resumed from epoch 3, at most 5 epochs"
    assert lines[1].endswith("10s  eta 10s")


def test_eta_arithmetic():
    assert run_eta([], 5) is None
    assert run_eta([2.0, 4.0], 10) == pytest.approx(30.0)
    assert run_eta([2.0, float("nan")], 3) == pytest.approx(6.0)
    assert run_eta([2.0], 0) == 0.0
    # two workers busy for 100 s and 40 s; three runs of 50 s to go: 40+50, 100+50, 90+50
    assert schedule_eta([100.0, 40.0], 3, 50.0, 2) == pytest.approx(150.0)
    assert schedule_eta([], 4, 10.0, 1) == pytest.approx(40.0)
    assert schedule_eta([30.0], 2, 10.0, 2) == pytest.approx(30.0)  # a free worker takes both
    assert schedule_eta([], 0, None, 2) == 0.0
    assert [format_duration(x) for x in (None, 0, 45.4, 185, 7620, float("inf"))] == [
        "-",
        "0.0s",
        "45s",
        "3m05s",
        "2h07m",
        "-",
    ]


def test_sweep_plain_lines_exactly():
    now = [0.0]
    s = io.StringIO()
    sp = SweepProgress("fig1a", 4, stream=s, clock=lambda: now[0])
    sp.skipped("true labels seed=0", "aaaa")
    sp.started("random labels seed=0", "bbbb", None)
    sp.epoch("bbbb", _rec(1))  # within a minute of the run's last line: nothing
    now[0] = 60.0
    sp.finished("random labels seed=0", "bbbb", "finished", _RESULT)
    sp.started("gaussian seed=0", "cccc", 7)
    now[0] = 90.0
    sp.finished("gaussian seed=0", "cccc", "diverged", {"epochs": 9, "seconds": 30.0})
    assert sp.eta() == pytest.approx(45.0)
    sp.started("flips seed=0", "dddd", None)
    sp.finished("flips seed=0", "dddd", "interrupted", {})  # Ctrl-C: no result
    sp.close()
    assert s.getvalue().splitlines()[:-1] == [
        "fig1a: skipped aaaa (true labels seed=0), already done",
        "fig1a: started bbbb (random labels seed=0)",
        "fig1a [2/4]: bbbb (random labels seed=0) finished, 3 epochs, fit at epoch 3, "
        "test acc 42.11%, 3m05s; sweep eta 2m00s",
        "fig1a: resumed cccc (gaussian seed=0) from epoch 7",
        "fig1a [3/4]: cccc (gaussian seed=0) diverged, 9 epochs, not fit, test acc -, 30s; "
        "sweep eta 45s",
        "fig1a: started dddd (flips seed=0)",
    ]
    # an interrupted run is not done: [3/4] stays, no sweep ETA, and the ETA is unchanged
    assert s.getvalue().splitlines()[-1] == (
        "fig1a [3/4]: dddd (flips seed=0) interrupted, resumes from its last checkpoint"
    )
    assert (sp.done, sp.n_finished, sp.n_interrupted) == (3, 2, 1)
    assert sp.eta() == pytest.approx(45.0)


def test_sweep_plain_epoch_line_with_the_runs_cap_and_eta():
    """Given the run's max_epochs, a heartbeat line says how far the run is and its ETA:
    the mean of the epochs trained in this process (not epoch 0, an evaluation) times the
    epochs left."""
    now = [0.0]
    s = io.StringIO()
    sp = SweepProgress("t1", 1, stream=s, clock=lambda: now[0], heartbeat=60.0)
    sp.started("AlexNet", "aaaa", 35, max_epochs=100)
    for t, epoch, secs in [(100, 36, 120.0), (220, 37, 124.0), (340, 38, 122.0)]:
        now[0] = float(t)
        sp.epoch("aaaa", {**_rec(epoch, seconds=secs, test_acc=None), "train_acc": 1.0})
    sp.close()
    assert s.getvalue().splitlines()[1:] == [
        "t1: aaaa (AlexNet) epoch 36/100  train acc 100.00% test acc -  2m00s  eta 2h08m",
        "t1: aaaa (AlexNet) epoch 37/100  train acc 100.00% test acc -  2m04s  eta 2h08m",
        "t1: aaaa (AlexNet) epoch 38/100  train acc 100.00% test acc -  2m02s  eta 2h06m",
    ]


def test_sweep_eta_ignores_interrupted_runs():
    """A time budget stops the two runs in flight: before, each counted as a finished run, so
    the ETA after them was the elapsed time per *interrupted* run times the runs left (Table
    1's 5-run sweep, stopped by its budget with 3 runs to go, said '[4/5] ... sweep eta
    32m59s')."""
    now = [0.0]
    s = io.StringIO()
    sp = SweepProgress("t1", 5, stream=s, clock=lambda: now[0])
    sp.started("AlexNet", "aaaa", 35)
    sp.started("AlexNet, wd", "bbbb", 35)
    now[0] = 7900.0
    # the budget's stop reports the run's epochs so far (as the driver sends it)
    budget = {"epochs": 4, "epochs_to_fit": None, "test_acc": 0.6786, "seconds": 465.0}
    sp.finished("AlexNet", "aaaa", "interrupted", budget)
    sp.finished("AlexNet, wd", "bbbb", "interrupted", {})  # Ctrl-C: no result
    sp.close()
    assert sp.eta() is None  # nothing finished: no basis for an ETA
    assert sp.done == 0
    assert s.getvalue().splitlines()[-2:] == [
        "t1 [0/5]: aaaa (AlexNet) interrupted, after 4 epochs, resumes from its last checkpoint",
        "t1 [0/5]: bbbb (AlexNet, wd) interrupted, resumes from its last checkpoint",
    ]


def test_sweep_eta_from_its_runs_epochs_before_any_run_finishes():
    """Table 1's resumed sweep: two runs done, two resumed at epoch 4 of 100 (~236 s an
    epoch on two workers), one not started. Before, the sweep's ETA was '-' until a run
    finished, hours in; now each epoch line gives it: the two runs' 96 epochs left, then
    the fifth run's 100 epochs on the first worker free."""
    now = [0.0]
    s = io.StringIO()
    sp = SweepProgress("t1", 5, stream=s, clock=lambda: now[0], heartbeat=60.0)
    sp.skipped("AlexNet", "aaaa")
    sp.skipped("AlexNet, wd", "bbbb")
    assert sp.eta() is None  # nothing measured yet
    sp.started("AlexNet, crop", "cccc", 4, max_epochs=100)
    sp.started("AlexNet, random labels", "dddd", 4, max_epochs=100)
    assert sp.eta() is None  # started, no epoch trained here yet
    now[0] = 236.0
    sp.epoch("cccc", {**_rec(5, seconds=236.0), "train_acc": 0.7376})
    assert sp.eta() is None  # the other run has no epoch yet
    sp.epoch("dddd", {**_rec(5, seconds=236.0), "train_acc": 0.1211})
    # 95 x 236 s on each worker, then 100 x 236 s: 46,020 s
    assert sp.eta() == pytest.approx(95 * 236 + 100 * 236)
    lines = s.getvalue().splitlines()
    assert lines[-1] == (
        "t1: dddd (AlexNet, random labels) epoch 5/100  train acc 12.11% test acc 50.00%"
        "  3m56s  eta 6h13m, sweep 12h47m"
    )
    # the crop run ends at epoch 100 (95 more epochs, 22,420 s here): its whole run is
    # estimated as its wall time here plus its 4 epochs before the resume
    now[0] = 236.0 * 96
    sp.epoch("dddd", {**_rec(96, seconds=236.0), "train_acc": 1.0})
    sp.finished("AlexNet, crop", "cccc", "finished", {"epochs": 100, "seconds": 23600.0})
    assert sp._run_costs == [pytest.approx(96 * 236 + 4 * 236)]
    # dddd: 4 epochs left; the fifth run: one whole run on the free worker
    assert sp.eta() == pytest.approx(100 * 236)
    assert s.getvalue().splitlines()[-1].endswith("; sweep eta 6h33m")


def test_sweep_eta_unknown_with_a_running_run_without_a_cap():
    now = [0.0]
    sp = SweepProgress("t", 3, stream=io.StringIO(), clock=lambda: now[0])
    sp.started("a", "aaaa", None, max_epochs=10)
    sp.started("b", "bbbb", None)  # no cap: its end cannot be foreseen
    now[0] = 5.0
    sp.epoch("aaaa", _rec(1, seconds=5.0))
    sp.epoch("bbbb", _rec(1, seconds=5.0))
    assert sp.eta() is None
    sp.finished("b", "bbbb", "finished", {"epochs": 1, "seconds": 5.0})
    # aaaa: 9 x 5 s left; the third run as long as bbbb was (5 s) on the worker bbbb freed
    assert sp.eta() == pytest.approx(45.0)


def test_sweep_failed_run_without_result():
    now = [0.0]
    s = io.StringIO()
    sp = SweepProgress("t", 2, stream=s, clock=lambda: now[0])
    sp.started("bad data", "aaaa", None)
    now[0] = 90.0
    sp.finished("bad data", "aaaa", "failed", {})
    sp.close()
    assert s.getvalue().splitlines()[-1] == (
        "t [1/2]: aaaa (bad data) failed, no result (its error follows the sweep); sweep eta -"
    )


def test_sweep_plain_epoch_line_once_a_heartbeat_per_run():
    """Off a terminal a sweep of hour-long runs is not silent between its runs' ends, and
    one of many second-long runs does not print every epoch: a run's epoch line comes once
    `heartbeat` seconds have passed since that run's last line, each run on its own clock."""
    now = [0.0]
    s = io.StringIO()
    sp = SweepProgress("t1", 2, stream=s, clock=lambda: now[0], heartbeat=60.0)
    sp.started("AlexNet", "aaaa", None)
    now[0] = 5.0
    sp.started("AlexNet, wd", "bbbb", 3)
    for t, run, epoch in [
        (30, "aaaa", 1),
        (61, "aaaa", 2),
        (62, "bbbb", 4),
        (66, "bbbb", 5),
        (100, "aaaa", 3),
        (121, "aaaa", 4),
        (200, "bbbb", 7),
    ]:
        now[0] = float(t)
        sp.epoch(run, _rec(epoch, seconds=30.0, test_acc=None if epoch % 2 else 0.7))
    sp.finished("AlexNet", "aaaa", "interrupted", {})
    sp.close()
    lines = s.getvalue().splitlines()
    assert lines[:-1] == [
        "t1: started aaaa (AlexNet)",
        "t1: resumed bbbb (AlexNet, wd) from epoch 3",
        "t1: aaaa (AlexNet) epoch 2  train acc 20.00% test acc 70.00%  30s",
        "t1: bbbb (AlexNet, wd) epoch 5  train acc 50.00% test acc -  30s",
        "t1: aaaa (AlexNet) epoch 4  train acc 40.00% test acc 70.00%  30s",
        "t1: bbbb (AlexNet, wd) epoch 7  train acc 70.00% test acc -  30s",
    ]
    assert lines[-1] == "t1 [0/2]: aaaa (AlexNet) interrupted, resumes from its last checkpoint"


def test_quiet_prints_nothing():
    s = io.StringIO()
    with RunProgress("x", 3, stream=s, mode="quiet") as p:
        p.start(None)
        p.epoch(_rec(1))
        p.end("finished", _RESULT)
    with SweepProgress("s", 2, stream=s, mode="quiet") as sp:
        sp.skipped("a", "1")
        sp.started("b", "2", 1)
        sp.finished("b", "2", "finished", _RESULT)
    assert s.getvalue() == ""
    assert run_progress(False, "x", 3, stream=s).mode == "quiet"
    assert run_progress(True, "x", 3, stream=s).mode == "plain"


def test_rich_terminal_renders():
    s = io.StringIO()
    with RunProgress("mlp rl", 4, stream=s, mode="terminal") as p:
        p.start(resumed_from=1)
        p.epoch(_rec(2))
        p.end("finished", _RESULT)
    out = s.getvalue()
    assert "\x1b[" in out  # rendered with terminal control codes
    assert "resumed from epoch 1" in out and "finished, 3 epochs" in out
    s = io.StringIO()
    with SweepProgress("fig1a", 2, stream=s, mode="terminal") as sp:
        sp.skipped("a", "r1")
        sp.started("b", "r2", None)
        sp.epoch("r2", _rec(1))
        sp.finished("b", "r2", "finished", _RESULT)
    out = s.getvalue()
    assert "sweep fig1a" in out and "2/2" in out and "skipped r1" in out
    # a run's row under the sweep's bar gives its cap and ETA when the cap is known
    s = io.StringIO()
    with SweepProgress("t1", 1, stream=s, mode="terminal") as sp:
        sp.started("AlexNet", "r1", 35, max_epochs=100)
        sp.epoch("r1", _rec(36, seconds=120.0, test_acc=None))
        (row,) = [t for t in sp._bar.tasks if t.description.strip() == "AlexNet"]
        assert row.fields["info"].startswith("epoch 36/100  train acc 360.00%")
        assert row.fields["info"].endswith("eta 2h08m")


def test_nothing_drawn_before_the_first_event():
    """A bad-input error raised before any run starts prints alone: no empty bar above it."""
    s = io.StringIO()
    sp = SweepProgress("s", 3, stream=s, mode="terminal")
    p = RunProgress("x", 3, stream=s, mode="terminal")
    sp.close()
    p.close()
    assert s.getvalue() == ""


def test_notebook_mode_uses_tqdm():
    pytest.importorskip("tqdm", reason="tqdm is a dependency of rethink; install it")
    s = io.StringIO()
    with RunProgress("nb", 4, stream=s, mode="notebook") as p:
        p.start(None)
        p.epoch(_rec(1))
        p.epoch(_rec(2))
    out = s.getvalue()
    assert "nb" in out and "2/4" in out


def test_auto_and_bad_mode():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert resolve_mode("auto", io.StringIO()) == "plain"
    assert resolve_mode("auto", Tty()) == "terminal"
    with pytest.raises(RethinkError, match="unknown progress mode"):
        RunProgress("x", 1, mode="loud")


def test_engine_records_are_accepted_and_progress_imports_no_torch():
    import subprocess
    import sys

    from rethink.train import EpochRecord

    s = io.StringIO()
    p = RunProgress("e", 4, stream=s, mode="plain")
    p.epoch(
        EpochRecord(
            epoch=1, step=8, lr=0.1, train_loss=1.0, train_acc=0.25, test_loss=None,
            test_acc=None, seconds=3.0,
        )
    )  # fmt: skip
    assert s.getvalue() == (
        "e: epoch 1/4  train loss 1.0000 acc 25.00%  test loss - acc -  3.0s  eta 9.0s\n"
    )
    code = "import sys, rethink.progress; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
