"""The Ray backend on real Ray clusters (skipped when ray is not installed): the local cluster
rethink starts itself (and leaves nothing behind on any way out), and an existing multi-node
cluster at --address that loses a worker node mid-sweep."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rethink.store import Store
from rethink.sweep import _ray_cluster, plan_from_dict, run_sweep

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")
RAY = Path(sys.executable).with_name("ray")


def settle(before: tuple[list[int], list[Path]], seconds: float = 20.0):
    """Wait until no rethink Ray process or folder is left beyond `before`; what is left."""
    deadline = time.time() + seconds
    while True:
        pids, folders = _ray_cluster.leftovers()
        extra = (
            [p for p in pids if p not in before[0]],
            [f for f in folders if f not in before[1]],
        )
        if not extra[0] and not extra[1] or time.time() > deadline:
            return extra
        time.sleep(0.5)


def test_ray_backend_runs_the_sweep_and_only_the_driver_writes(tmp_path, monkeypatch):
    """A local cluster; built-in and user code (the docs/plugins.md example in the current
    folder, not installed: shipped with runtime_env py_modules); nothing left at the end."""
    from test_plugins import doc_example

    from rethink.sweep._executors import _runtime_env

    (tmp_path / "myplugins.py").write_text(doc_example())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    doc = {
        "name": "ray",
        "base": {
            "data": {"dataset": "myplugins:two_blobs", "train_size": 200},
            "train": {"max_epochs": 3, "lr": 0.05, "checkpoint_every": 1},
        },
        "axes": {
            "labels": ["none", "random-labels"],
            "model.name": ["mlp-1x32", "myplugins:make_wide_mlp"],
        },  # fmt: skip
    }
    before = _ray_cluster.leftovers()
    plan = plan_from_dict(doc)
    tasks = [(r.run_id, r.spec.normalized().to_dict()) for r in plan.runs]
    assert _runtime_env(tasks) == {"py_modules": [str((tmp_path / "myplugins.py").resolve())]}
    db = tmp_path / "ray.db"
    summary = run_sweep(plan, db, jobs=2, backend="ray")
    assert summary.finished == 4, summary.errors
    with Store(db, readonly=True) as st:
        for r in st.runs():
            assert r["status"] == "finished"
            assert [e["epoch"] for e in st.epochs(r["run_id"])] == [0, 1, 2, 3]
            assert r["result"]["epochs"] == 3
    assert not ray.is_initialized()
    assert settle(before) == ([], [])  # no Ray process, no session folder left
    sys.modules.pop("myplugins", None)


SWEEP = """
name = "{name}"
[base]
data = {{ dataset = "digits", preprocess = "standardize" }}
model = {{ name = "mlp-1x256" }}
train = {{ max_epochs = {epochs}, lr = 0.05, schedule = "constant", checkpoint_every = 2 }}
[axes]
"corruption.kind" = ["none", "random-labels"]
seed = [0, 1]
"""


# Ray >= 2.5x turns token authentication on for the clusters it starts; every process of the
# test cluster (nodes and driver) uses it, with the token in ~/.ray/auth_token.
AUTH = {"RAY_AUTH_MODE": "token"}


def rethink_sweep(*args: str, **kw) -> subprocess.Popen:
    code = "import sys; from rethink.cli import main; sys.argv[0] = 'rethink'; main()"
    env = {**os.environ, "OMP_NUM_THREADS": "1", **AUTH}
    cmd = [sys.executable, "-c", code, "sweep", *args]
    pipe = subprocess.PIPE
    return subprocess.Popen(cmd, env=env, stdout=pipe, stderr=pipe, text=True, **kw)


def wait_for(pred, seconds: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the sweep ended before {what}: {out[-2000:]} {err[-2000:]}")
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def in_progress(db: Path, min_epochs: int) -> list[str]:
    """Run ids with at least min_epochs epochs stored and no result yet."""
    if not db.exists():
        return []
    try:
        with Store(db, readonly=True) as st:
            runs = [r for r in st.runs() if r["status"] == "running"]
            return [r["run_id"] for r in runs if len(st.epochs(r["run_id"])) > min_epochs]
    except Exception:  # the driver is creating it
        return []


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_local_cluster_is_gone_however_the_driver_ends(tmp_path, how):
    """SIGTERM: the driver marks the runs interrupted and shuts its cluster down; SIGKILL: the
    reaper does. Either way no Ray process and no session folder is left."""
    (tmp_path / "s.toml").write_text(SWEEP.format(name="stop", epochs=400))
    db = tmp_path / "stop.db"
    before = _ray_cluster.leftovers()
    proc = rethink_sweep(str(tmp_path / "s.toml"), "--backend", "ray", "--jobs", "1",
                         "--store", str(db))  # fmt: skip
    try:
        wait_for(lambda: in_progress(db, 2), 240, "a run under way", proc)
        assert settle(before, 0)[0], "the driver's Ray processes are not visible"
        proc.send_signal(how)
        proc.communicate(timeout=120)
        assert settle(before) == ([], [])
    finally:
        if proc.poll() is None:
            proc.kill()
    if how == signal.SIGTERM:
        assert proc.returncode != 0
        with Store(db, readonly=True) as st:
            assert {r["status"] for r in st.runs()} <= {"interrupted", "finished"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raylets() -> set[int]:
    """Pids of the raylet processes (one per Ray node) on this machine."""
    found = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read().split(b"\0")[0].endswith(b"/raylet/raylet"):
                    found.add(int(entry))
        except (OSError, ValueError):
            continue
    return found


def ray_cli(*args: str) -> None:
    env = {**os.environ, **AUTH, "RAY_health_check_period_ms": "1000",
           "RAY_health_check_failure_threshold": "3"}  # fmt: skip
    done = subprocess.run([str(RAY), *args], capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.slow
def test_a_sweep_on_a_two_node_cluster_survives_losing_a_node(tmp_path):
    """`ray start --head` plus a second `ray start --address` node (separate processes,
    loopback only), a sweep with --address; the worker node's raylet is killed mid-sweep; the
    lost run is rescheduled from its last checkpoint and every run lands once in the store."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    try:
        ray_cli("start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                "--node-ip-address=127.0.0.1", "--disable-usage-stats")  # fmt: skip
        head = raylets()
        ray_cli("start", f"--address={address}", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                "--disable-usage-stats")  # fmt: skip
        worker = raylets() - head
        assert len(worker) == 1, (head, worker)

        (tmp_path / "s.toml").write_text(SWEEP.format(name="nodes", epochs=60))
        db = tmp_path / "nodes.db"
        proc = rethink_sweep(str(tmp_path / "s.toml"), "--backend", "ray", "--address", address,
                             "--jobs", "2", "--store", str(db))  # fmt: skip
        # two runs under way at once: one on each node (each has one CPU)
        wait_for(lambda: len(in_progress(db, 3)) >= 2, 300, "two runs under way", proc)
        os.kill(worker.pop(), signal.SIGKILL)  # the worker node dies
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:] + err[-3000:]
        assert "rescheduled from epoch" in err, err[-3000:]
        with Store(db, readonly=True) as st:
            runs = st.runs()
            assert len(runs) == 4 and {r["status"] for r in runs} == {"finished"}
            moved = [r for r in runs if r["result"].get("rescheduled")]
            for r in runs:
                assert [e["epoch"] for e in st.epochs(r["run_id"])] == list(range(61))
        assert len(moved) == 1, [r["result"] for r in runs]
        (note,) = moved[0]["result"]["rescheduled"]
        assert note["from_epoch"] >= 2 and "lost" in note["why"]
    finally:
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, timeout=120)


@pytest.mark.slow
def test_a_time_budget_stops_ray_tasks_at_an_epoch_end_checkpointed(tmp_path):
    """The deadline travels to the Ray tasks; each stops at its first epoch end after it, with
    that epoch's checkpoint back in the driver's store, and nothing starts after it."""
    doc = {
        "name": "ray-budget",
        "base": {
            "data": {"dataset": "digits"},
            "model": {"name": "mlp-1x64"},
            "train": {"max_epochs": 5000, "batch_size": 8, "lr": 0.05, "checkpoint_every": 1000},
        },
        "axes": {"labels": ["none", "random-labels", "gaussian"]},
    }
    import torch

    before = _ray_cluster.leftovers()
    plan = plan_from_dict(doc)
    db = tmp_path / "ray.db"
    summary = run_sweep(plan, db, jobs=2, backend="ray", threads=1, stop_after=40)
    assert (summary.interrupted, summary.pending) == (2, 1), summary.statuses
    with Store(db, readonly=True) as st:
        runs = st.runs()
        assert len(runs) == 2 and {r["status"] for r in runs} == {"interrupted"}
        for r in runs:
            eps = [e["epoch"] for e in st.epochs(r["run_id"])]
            assert eps == list(range(len(eps))) and 0 < eps[-1] < 5000
            ckpt = torch.load(st.checkpoint_path(r["run_id"]), weights_only=True)
            assert ckpt["epoch"] == eps[-1]
    assert settle(before) == ([], [])
