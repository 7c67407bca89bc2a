"""The one run lifecycle (rethink.lifecycle): one writer per run (real processes), stale locks,
statuses, provenance, thread counts across a resume, checkpoints too new for the store,
checkpoints of the wrong content, a full disk, and presets inside the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from rethink import runner
from rethink.errors import RethinkError
from rethink.lifecycle import Recorder, RunLock, save_checkpoint
from rethink.spec import RunSpec
from rethink.store import Store

ROOT = Path(__file__).resolve().parents[1]
RETHINK = [sys.executable, "-m", "rethink"]


def _spec(**kw) -> RunSpec:
    base = {"dataset": "digits", "train_size": 300, "model.name": "mlp-1x64", "lr": 0.05}
    return RunSpec.from_dict({**base, **kw}).normalized()


def _stop_after(k: int):
    """A should_stop callback that asks the run to stop from its (k+1)-th call on."""
    calls = 0

    def stop() -> bool:
        nonlocal calls
        calls += 1
        return calls > k

    return stop


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_two_identical_runs_started_together_one_trains_the_other_exits_2(tmp_path):
    db = tmp_path / "runs.db"
    args = [*RETHINK, "run", "--dataset", "digits", "--model", "mlp-1x256", "--lr", "0.01",
            "--max-epochs", "300", "--checkpoint-every", "50", "--threads", "1",
            "--store", str(db)]  # fmt: skip
    procs = [
        subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True
        )  # fmt: skip
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)]
    err = loser[1].strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: run ")
    assert "is being trained by process" in err[0] and "wait for it or use another store" in err[0]
    assert "Traceback" not in loser[1]
    rid = RunSpec.from_dict(
        {
            "dataset": "digits",
            "model.name": "mlp-1x256",
            "lr": 0.01,
            "max_epochs": 300,
            "checkpoint_every": 50,
        }  # fmt: skip
    ).run_id()
    with Store(db, readonly=True) as st:
        assert st.epoch_numbers(rid) == list(range(301))  # each epoch once, all of them
        assert st.get_run(rid)["status"] == "finished"
    assert not (tmp_path / "runs.db.locks" / f"{rid}.lock").exists()  # released


def test_a_lock_left_by_a_dead_process_is_taken_over_and_said(tmp_path):
    db = tmp_path / "runs.db"
    spec = _spec(max_epochs=2)
    lock = tmp_path / "runs.db.locks" / f"{spec.run_id()}.lock"
    lock.parent.mkdir()
    lock.write_text("999999 deadhost")  # its holder is gone: no kernel lock on the file
    notes: list[str] = []
    r = runner.run(spec, store=db, device="cpu", notice=notes.append)
    assert r["status"] == "finished"
    assert any("took over the lock" in n and "999999" in n and "deadhost" in n for n in notes)


def test_a_held_lock_refuses_a_second_writer_in_one_sentence(tmp_path):
    db = tmp_path / "runs.db"
    spec = _spec(max_epochs=2)
    with Store(db) as st:
        held = RunLock(st.path, spec.run_id())
        try:
            with pytest.raises(RethinkError, match=r"is being trained by process \d+ on host"):
                runner.run(spec, store=db, device="cpu")
            assert st.runs() == []  # nothing written
        finally:
            held.release()


def test_an_unknown_status_is_an_error_not_finished(tmp_path):
    spec = _spec(max_epochs=1)
    with Store(tmp_path / "s.db") as st:
        rec = Recorder(st, spec)
        rec.begin()
        with pytest.raises(RethinkError, match="unknown status"):
            rec.finish("done-ish", {})
        assert st.get_run(spec.run_id())["status"] == "failed"


def test_a_fresh_run_records_its_provenance_and_rethink_runs_shows_it(tmp_path, capsys):
    from rethink.cli import main

    db = tmp_path / "s.db"
    spec = _spec(max_epochs=1)
    runner.run(spec, store=db, device="cpu", threads=1)
    with Store(db, readonly=True) as st:
        prov = st.get_run(spec.run_id())["provenance"]
    assert prov["threads"] == 1 and prov["device"].startswith("cpu")
    assert len(prov["data_sha256"]) == 64
    assert prov["torch"] and prov["numpy"] and prov["python"] and prov["rethink"]
    assert "git" in prov  # a commit (+dirty) from a checkout, None from an installed wheel
    if (ROOT / ".git").exists():
        assert prov["git"] and len(prov["git"].split("+")[0]) == 40
    with pytest.raises(SystemExit) as exc:
        main(["runs", "--store", str(db)])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert "threads 1" in out and prov["data_sha256"][:12] in out


def test_the_data_checksum_follows_the_data_the_run_saw():
    a = runner.setup(_spec(), device="cpu")
    b = runner.setup(_spec(labels="random-labels"), device="cpu")
    from rethink.lifecycle import data_checksum

    assert data_checksum(a.data) == data_checksum(runner.setup(_spec(), device="cpu").data)
    assert data_checksum(a.data) != data_checksum(b.data)


def test_a_resume_on_another_thread_count_says_so_and_records_both(tmp_path):
    db = tmp_path / "s.db"
    spec = _spec(max_epochs=6, checkpoint_every=1)
    stop = _stop_after(3)
    r = runner.run(spec, store=db, device="cpu", threads=1, should_stop=stop)
    assert r["status"] == "interrupted"
    notes: list[str] = []
    r = runner.run(spec, store=db, device="cpu", threads=2, notice=notes.append)
    assert r["status"] == "finished" and r["resumed_from"] == 3
    assert any("resumes on 2 threads" in x and "ran on 1" in x for x in notes)
    with Store(db, readonly=True) as st:
        prov = st.get_run(spec.run_id())["provenance"]
        assert st.epoch_numbers(spec.run_id()) == list(range(7))
    assert prov["threads"] == [1, 2]
    assert [(a["threads"], a["from_epoch"]) for a in prov["attempts"]] == [(1, 0), (2, 3)]


def test_a_resume_on_a_cpu_with_other_kernels_says_so_and_records_both(tmp_path, monkeypatch):
    import rethink.lifecycle as lifecycle

    db = tmp_path / "s.db"
    spec = _spec(max_epochs=6, checkpoint_every=1)
    stop = _stop_after(3)
    intel = ("GenuineIntel family 6 model 143", "AVX512")
    monkeypatch.setattr(lifecycle, "cpu_identity", lambda: intel)
    r = runner.run(spec, store=db, device="cpu", threads=1, should_stop=stop)
    assert r["status"] == "interrupted"
    amd = ("AuthenticAMD family 25 model 1", "AVX2")
    monkeypatch.setattr(lifecycle, "cpu_identity", lambda: amd)
    notes: list[str] = []
    r = runner.run(spec, store=db, device="cpu", threads=1, notice=notes.append)
    assert r["status"] == "finished" and r["resumed_from"] == 3
    said = [x for x in notes if "resumes on a CPU with AVX2 kernels" in x]
    assert len(said) == 1 and "AuthenticAMD family 25 model 1" in said[0]
    assert "earlier epochs ran with AVX512" in said[0]
    with Store(db, readonly=True) as st:
        prov = st.get_run(spec.run_id())["provenance"]
    assert prov["cpu_capability"] == ["AVX2", "AVX512"] and prov["threads"] == [1]
    assert [(a["cpu_capability"], a["from_epoch"]) for a in prov["attempts"]] == [
        ("AVX512", 0), ("AVX2", 3)
    ]  # fmt: skip
    # the same kernels again: nothing to say
    notes.clear()
    runner.run(_spec(max_epochs=1), store=db, device="cpu", threads=1, notice=notes.append)
    assert not [x for x in notes if "kernels" in x]


def test_the_cpu_kernels_torch_picks_are_part_of_a_run_s_trajectory(tmp_path):
    """Why provenance records cpu_capability: the same run with torch's generic kernels
    (ATEN_CPU_CAPABILITY=default) and with this CPU's vector kernels gives other floats
    (measured on an AVX2 CPU: mnist-5k, MLP 1x512, train loss 2.3261806030273435 at epoch 0
    with AVX2 kernels, 2.3261805419921875 with the generic ones)."""
    import json

    import torch

    from rethink.lifecycle import cpu_identity

    here = cpu_identity()[1]
    if here in (None, "DEFAULT"):
        pytest.skip("this CPU has only torch's generic kernels")
    code = (
        "import torch, json; from rethink import runner; from rethink.spec import RunSpec;"
        "s = RunSpec.from_dict({'dataset': 'mnist-5k', 'train_size': 1000, 'model.name': "
        "'mlp-1x512', 'lr': 0.1, 'max_epochs': 1}).normalized();"
        "import sys; runner.run(s, store=sys.argv[1], device='cpu', threads=1);"
        "from rethink.store import Store; from rethink.lifecycle import cpu_identity;"
        "st = Store(sys.argv[1], readonly=True);"
        "print(json.dumps([cpu_identity()[1], [e['train_loss'] for e in st.epochs(s.run_id())]]))"
    )
    out = {}
    for isa in ("default", here.lower()):
        env = {**_env(), "ATEN_CPU_CAPABILITY": isa}
        db = tmp_path / f"{isa}.db"
        p = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True,
                           env=env, timeout=300)  # fmt: skip
        assert p.returncode == 0, p.stderr
        got, loss = json.loads(p.stdout.strip().splitlines()[-1])
        out[got] = loss
    assert set(out) == {"DEFAULT", here}
    assert out["DEFAULT"] != out[here], out
    assert torch.backends.cpu.get_cpu_capability() == here


def test_a_checkpoint_newer_than_the_store_is_not_trusted(tmp_path):
    # killed at epoch 2 while the checkpoint comes from epoch 4 of the same run
    db = tmp_path / "s.db"
    spec = _spec(max_epochs=6, checkpoint_every=2)
    states = {}
    runner.execute(spec, device="cpu", on_checkpoint=lambda e, s: states.setdefault(e, s))
    full = runner.run(spec, store=tmp_path / "clean.db", device="cpu")
    with Store(db) as st:
        rec = Recorder(st, spec)
        rec.begin()
        for row in Store(tmp_path / "clean.db", readonly=True).epochs(spec.run_id())[:3]:
            rec.epoch(row)  # epochs 0-2 held
        rec.close()
    save_checkpoint(Store(db, readonly=True).checkpoint_path(spec.run_id()), states[4])
    notes: list[str] = []
    r = runner.run(spec, store=db, device="cpu", notice=notes.append)
    assert r["resumed_from"] is None and r["status"] == "finished"
    assert any("is from epoch 4 but the store holds epochs 0-2" in x for x in notes)
    with Store(db, readonly=True) as st:
        assert st.epoch_numbers(spec.run_id()) == list(range(7))
    assert r["test_acc"] == full["test_acc"] and r["train_loss"] == full["train_loss"]


@pytest.mark.parametrize("damage", ["shape", "rng", "torn"])
def test_a_checkpoint_with_the_wrong_content_restarts_the_run_and_names_the_file(tmp_path, damage):
    import torch

    db = tmp_path / "s.db"
    spec = _spec(max_epochs=4, checkpoint_every=1)
    stop = _stop_after(2)
    runner.run(spec, store=db, device="cpu", should_stop=stop)
    ckpt = Store(db, readonly=True).checkpoint_path(spec.run_id())
    state = torch.load(ckpt, weights_only=True)
    if damage == "shape":
        k = next(iter(state["model"]))
        state["model"][k] = torch.zeros(3, 3)
        save_checkpoint(ckpt, state)
    elif damage == "rng":
        del state["cpu_rng"]
        save_checkpoint(ckpt, state)
    else:
        ckpt.write_bytes(ckpt.read_bytes()[:100])
    notes: list[str] = []
    r = runner.run(spec, store=db, device="cpu", notice=notes.append)
    assert r["status"] == "finished" and r["resumed_from"] is None
    assert any(str(ckpt) in x and "starting run" in x for x in notes), notes
    with Store(db, readonly=True) as st:
        assert st.epoch_numbers(spec.run_id()) == list(range(5))


def test_a_full_disk_is_one_sentence_and_the_run_resumes_after(tmp_path, monkeypatch):
    import errno

    import rethink.lifecycle as lc

    db = tmp_path / "s.db"
    spec = _spec(max_epochs=4, checkpoint_every=2)
    real = lc.os.fsync
    calls = {"n": 0}

    def full(fd):
        calls["n"] += 1
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lc.os, "fsync", full)
    with pytest.raises(RethinkError, match=r"is full: about .* MB more were needed"):
        runner.run(spec, store=db, device="cpu")
    monkeypatch.setattr(lc.os, "fsync", real)
    with Store(db, readonly=True) as st:
        assert st.get_run(spec.run_id())["status"] == "interrupted"
        assert not list(st.checkpoint_dir.glob(".*.tmp"))  # no temporary file left
    r = runner.run(spec, store=db, device="cpu")
    assert r["status"] == "finished"


@pytest.mark.slow
def test_the_wheel_holds_the_presets(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, timeout=600,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("rethink-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    presets = sorted(Path(n).stem for n in names if n.startswith("rethink/presets/"))
    assert {"fig1a", "fig1bc", "fig2", "table1", "table4"} <= set(presets)


def test_the_presets_are_package_data():
    import tomllib

    text = (ROOT / "pyproject.toml").read_text()
    data = tomllib.loads(text)["tool"]["setuptools"]["package-data"]["rethink"]
    assert "presets/*.toml" in data
    from rethink.sweep import PRESET_DIR

    assert PRESET_DIR.parent == Path(runner.__file__).parent  # inside the package
    assert time.time() > 0


def test_records_and_threshold_samples_reach_the_store(tmp_path):
    from rethink.dynamics import _records

    db = tmp_path / "s.db"
    spec = _spec(labels="partial-labels", corrupt_prob=0.3, threshold_samples=True,
                 record_examples=True, max_epochs=3)  # fmt: skip
    job = runner.setup(spec, device="cpu")
    assert job.data.num_classes == 11 and int(job.threshold.sum()) == 300 // 11
    assert int((job.data.y_train == 10).sum()) == 300 // 11
    runner.run(spec, store=db, device="cpu")
    with Store(db, readonly=True) as st:
        rec = _records.load(st.db, spec.run_id())
        rows = st.epochs(spec.run_id())
    assert list(rec["epochs"]) == [0, 1, 2, 3] and rec["correct"].shape == (4, 300)
    assert int(rec["threshold"].sum()) == 300 // 11
    # the records agree with the epoch rows, and the CSR was measured at 0, 1, 2 and the end
    for i, row in enumerate(rows):
        assert rec["correct"][i].mean() == pytest.approx(row["train_acc"], abs=1e-6)
        assert 0.0 <= row["csr_train"] <= 1.0 and 0.0 <= row["csr_test"] <= 1.0
