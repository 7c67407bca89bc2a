"""SIGKILL at seeded random moments of `rethink run` and `rethink sweep --jobs 1 / 2`, then
a rerun: every epoch stored once, contiguous, and every row (timing columns aside) equal to
an uninterrupted run with the same seed and threads.

A kill lands after a seeded number of stored epochs (0: a seeded delay into start-up) plus a
seeded jitter of up to 60 ms, so it falls in imports, set-up, mid-epoch, mid-write and
mid-checkpoint. The whole process group is killed (a sweep's workers die with the driver,
as on a power cut). The default suite runs two trials of `run` and one of `sweep --jobs 2`;
`-m slow` adds `--jobs 1` and many more trials. Counts print with `-s`.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from ._util import assert_same_as, env, reference, rethink_argv, run_child
from .conftest import EPOCHS, RUN

SWEEP_EPOCHS = 12
SWEEP_TOML = f"""name = "kill"
[base]
data = {{ dataset = "digits" }}
model = {{ name = "mlp-1x64" }}
train = {{ lr = 0.05, schedule = "constant", max_epochs = {SWEEP_EPOCHS}, checkpoint_every = 3 }}
[axes]
seed = [0, 1, 2]
"""


def _stored_epochs(store: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=0.05)
        try:
            return con.execute("SELECT COUNT(*) FROM epochs").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0  # not created yet, or locked for a moment


def kill_at_random(argv: list, store: Path, rng: random.Random, total_epochs: int) -> str:
    """Start `rethink ARGV`, SIGKILL its process group at a seeded moment; what happened."""
    target = rng.randrange(0, total_epochs)
    jitter = rng.uniform(0, 0.06)
    proc = subprocess.Popen(rethink_argv(*argv), env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        if target == 0:
            time.sleep(rng.uniform(0, 3.0))
        while target and _stored_epochs(store) < target and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        time.sleep(jitter)
        if proc.poll() is not None:
            return "finished before the kill"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        return f"killed after {target} stored epochs" if target else "killed in start-up"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _check_resumed(store: Path, ref: dict) -> None:
    assert_same_as(store, ref)
    leftovers = [p for p in Path(f"{store}.ckpt").glob("*") if p.suffix != ".pt"]
    assert not leftovers, leftovers


@pytest.fixture(scope="module")
def reference_sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ref-sweep")
    (folder / "kill.toml").write_text(SWEEP_TOML)
    done = run_child("sweep", folder / "kill.toml", "--store", folder / "ref.db", "--jobs", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    return reference(folder / "ref.db")


def _trials(kind: str, n: int, seed: int, reference: dict, tmp_path: Path) -> list[str]:
    outcomes = []
    for trial in range(n):
        rng = random.Random(f"{kind}-{seed}-{trial}")
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        store = folder / "s.db"
        if kind == "run":
            argv, total = [*RUN, "--store", store], EPOCHS
        else:
            (folder / "kill.toml").write_text(SWEEP_TOML)
            jobs = kind[-1]
            argv = ["sweep", folder / "kill.toml", "--store", store, "--jobs", jobs]
            total = 3 * SWEEP_EPOCHS
        outcomes.append(kill_at_random(argv, store, rng, total))
        again = run_child(*argv)
        assert again.returncode == 0, f"trial {trial} ({outcomes[-1]}): {again.stderr[-2000:]}"
        _check_resumed(store, reference)
    print(f"\n{kind}: {n} SIGKILL trials, every one resumed bit-identically: " + "; ".join(
        f"{o} x{outcomes.count(o)}" for o in sorted(set(outcomes))))  # fmt: skip
    return outcomes


def test_sigkill_run_then_rerun(reference_run, tmp_path):
    _trials("run", 2, 0, reference_run, tmp_path)


def test_sigkill_sweep_jobs2_then_rerun(reference_sweep, tmp_path):
    _trials("sweep-jobs2", 1, 0, reference_sweep, tmp_path)


@pytest.mark.slow
def test_sigkill_sweep_jobs1_then_rerun(reference_sweep, tmp_path):
    _trials("sweep-jobs1", 2, 0, reference_sweep, tmp_path)


@pytest.mark.slow
def test_sigkill_run_many(reference_run, tmp_path):
    _trials("run", 12, 1, reference_run, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigkill_sweep_many(jobs, reference_sweep, tmp_path):
    _trials(f"sweep-jobs{jobs}", 8, 1, reference_sweep, tmp_path)
