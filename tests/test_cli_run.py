"""`rethink run`, `rethink runs` and `rethink demo` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _cli import run_cli

from rethink.store import Store

ARGS = ["--dataset", "digits", "--train-size", "300", "--model", "mlp-1x64", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_run_json_then_skip(tmp_path, capsys):
    db = str(tmp_path / "r.db")
    argv = ["run", *ARGS, "--corruption", "random", "--lr", "0.1", "--max-epochs", "3"]
    code, out, err = run_cli([*argv, "--store", db, "--json"], capsys)
    assert code == 0, err
    obj = json.loads(out.strip().splitlines()[-1])
    keys = {"run_id", "status", "epochs", "epochs_to_fit", "train_acc", "test_acc"}
    keys |= {"best_test_acc", "train_loss", "test_loss", "params", "seconds"}
    assert keys <= obj.keys()
    assert obj["status"] == "finished" and obj["epochs"] == 3 and obj["epochs_to_fit"] is None
    assert "epoch 3/3" in err  # human lines go to stderr under --json
    code, out2, _ = run_cli([*argv, "--store", db, "--json"], capsys)
    again = json.loads(out2.strip().splitlines()[-1])
    assert code == 0 and again["skipped"] is True and again["test_acc"] == obj["test_acc"]
    code, out3, _ = run_cli([*argv, "--store", db], capsys)  # people's output: a table
    assert code == 0 and "already finished" in out3 and "test acc" in out3


def test_flags_override_the_toml_config(tmp_path, capsys):
    cfg = tmp_path / "spec.toml"
    cfg.write_text(
        '[data]\ndataset = "digits"\ntrain_size = 200\n[model]\nname = "mlp-1x32"\n'
        '[train]\nlr = 0.05\nmax_epochs = 2\nschedule = "paper"\n'
    )
    db = tmp_path / "r.db"
    code, out, err = run_cli(
        ["run", "--config", str(cfg), "--lr", "0.2", "--store", str(db), "--json"], capsys
    )
    assert code == 0, err
    with Store(db, readonly=True) as st:
        (row,) = st.runs()
    assert row["spec"]["train"]["lr"] == 0.2  # the flag wins
    assert row["spec"]["train"]["schedule"] == "paper" and row["spec"]["data"]["train_size"] == 200


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--model", "no-such-net"], "model"),
        (["--dataset", "no-such-data"], "dataset"),
        (["--lr", "-0.1"], "lr"),
        (["--corruption", "sideways"], "corruption"),
        (["--dataset", "cifar10", "--data-dir", "EMPTY"], "cifar"),
        (["--config", "BAD"], "toml"),
        (["--config", "MISSING"], "does not exist"),
        (["--device", "tpu"], "device"),
    ],
)
def test_bad_input_is_one_sentence_and_writes_nothing(tmp_path, capsys, extra, needle):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "BAD").write_text("[train\nlr = ")
    extra = [str(tmp_path / e) if e in ("EMPTY", "BAD", "MISSING") else e for e in extra]
    db = tmp_path / "r.db"
    code, out, err = run_cli(
        ["run", *ARGS, "--max-epochs", "1", *extra, "--store", str(db)], capsys
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    assert needle in lines[0].lower()
    assert not db.exists()


def test_runs_lists_and_exports(tmp_path, capsys):
    db = str(tmp_path / "r.db")
    for corruption in ("none", "random-labels"):
        code, _, err = run_cli(
            ["run", *ARGS, "--corruption", corruption, "--max-epochs", "1", "--store", db], capsys
        )
        assert code == 0, err
    code, out, _ = run_cli(
        ["runs", "--store", db, "--json", "--csv", str(tmp_path / "csv")], capsys
    )
    obj = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and len(obj["runs"]) == 2
    assert {r["status"] for r in obj["runs"]} == {"finished"}
    assert (tmp_path / "csv" / "epochs.csv").read_text().count("\n") == 1 + 2 * 2
    code, out, _ = run_cli(["runs", "--store", db], capsys)
    assert code == 0 and "2 runs" in out
    code, _, err = run_cli(["runs", "--store", str(tmp_path / "none.db")], capsys)
    assert code == 2 and err.startswith("error: ")


def test_demo_python_api_small(tmp_path):
    from rethink.demo import run_demo

    over = {"train_size": 300, "model.name": "mlp-1x256", "max_epochs": 150}
    out = run_demo(tmp_path / "demo", device="cpu", overrides=over, threads=1)
    settings = ["true labels", "random labels", "shuffled pixels", "random pixels", "Gaussian"]
    assert [r["setting"] for r in out["runs"]] == settings
    for r in out["runs"]:
        assert r["status"] == "finished" and r["train_acc"] == 1.0, r["setting"]
    png = open(out["figure"], "rb").read()  # the report's Fig. 1a, the one figure
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "demo" / "report.html").is_file()
    with Store(tmp_path / "demo" / "runs.db", readonly=True) as st:
        assert len(st.runs(sweep="fig1a-demo")) == 5


@pytest.mark.slow
def test_demo_command_fits_all_five(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "rethink", "demo", "--out", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout.strip().splitlines()[-1])
    assert [x["train_acc"] for x in obj["runs"]] == [1.0] * 5
    assert all(x["epochs_to_fit"] is not None for x in obj["runs"])


def _gpu_check(tmp_path, models):
    from pathlib import Path

    fm = Path("/usr/share/datasets/fashion-mnist")
    if not fm.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    data = tmp_path / "data"
    (data / "fashion-mnist").mkdir(parents=True)
    for f in fm.iterdir():
        (data / "fashion-mnist" / f.name).symlink_to(f)
    if "inception" in models:
        import os

        found = [Path(p) / "cifar10-jpeg.tar.gz" for p in (os.environ.get("RETHINK_DATA", ""),)]
        found += [Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"]
        tar = next((p for p in found if p.is_file()), None)
        if tar is None:
            pytest.skip("cifar10-jpeg.tar.gz not found")
        (data / "cifar10-jpeg.tar.gz").symlink_to(tar)
    script = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.sh"
    env = {**__import__("os").environ, "PYTHON": sys.executable, "RETHINK_CACHE": str(tmp_path)}
    r = subprocess.run(
        ["bash", str(script), str(data), "--smoke", "--models", models],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout.strip().splitlines()[-1])
    assert "epochs" in r.stdout and "samples/s" in r.stdout  # the table
    return obj["rows"]


def test_gpu_check_smoke_runs_on_cpu(tmp_path):
    rows = _gpu_check(tmp_path, "mlp-1x512")
    assert [(r["model"], r["labels"]) for r in rows] == [
        ("mlp-1x512", "true"),
        ("mlp-1x512", "random"),
    ]
    assert all(r["epochs"] == 2 and r["samples_per_s"] > 0 for r in rows)


@pytest.mark.slow
def test_gpu_check_smoke_with_inception(tmp_path):
    rows = _gpu_check(tmp_path, "mlp-1x512,inception-small")
    assert len(rows) == 4 and rows[-1]["model"] == "inception-small"


def test_gpu_check_refuses_a_missing_folder(tmp_path):
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.sh"
    args = ["bash", str(script), str(tmp_path / "nope")]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error:")


def test_set_overrides_any_spec_field_and_unknown_keys_list_the_known_ones(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    argv = ["run", "--dataset", "digits", "--model", "mlp-1x64", "--max-epochs", "1",
            "--set", "train.lr=0.05", "--set", "data.train_size=500",
            "--set", "subset_seed=3", "--set", "train.step_gamma=0.5",
            "--store", db, "--json"]  # fmt: skip
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    with Store(db, readonly=True) as st:
        (run,) = st.runs()
    assert run["spec"]["train"]["lr"] == 0.05 and run["spec"]["data"]["train_size"] == 500
    assert run["spec"]["data"]["subset_seed"] == 3 and run["spec"]["train"]["step_gamma"] == 0.5
    before = (tmp_path / "s.db").read_bytes()
    for bad, words in (
        ("train.learning_rate=0.1", "unknown spec key 'train.learning_rate'; known keys: seed,"),
        ("train.lr=fast", "must be a number"),
        ("train.lr=inf", "must be a finite number"),
        ("lr", "--set takes KEY=VALUE"),
    ):
        code, _, err = run_cli([*argv[:-3], "--set", bad, "--store", db], capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and words in lines[0], err
    assert (tmp_path / "s.db").read_bytes() == before


def test_a_run_without_a_dataset_or_with_an_unused_parameter_is_refused(tmp_path, capsys):
    db = tmp_path / "s.db"
    for argv, words in (
        (["run", "--model", "mlp-1x64"], "no dataset given"),
        (["run", "--dataset", "digits"], "no model given"),
        (
            [
                "run",
                "--dataset",
                "digits",
                "--model",
                "mlp-1x64",
                "--corruption",
                "random-labels",
                "--corrupt-prob",
                "0.4",
            ],
            "takes no probability",
        ),  # fmt: skip
        (
            [
                "run",
                "--dataset",
                "digits",
                "--model",
                "mlp-1x64",
                "--corruption",
                "shuffled-pixels",
                "--corrupt-prob",
                "0.5",
            ],
            "takes no probability",
        ),  # fmt: skip
    ):
        code, _, err = run_cli([*argv, "--store", str(db)], capsys)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not db.exists()


def test_runs_forget_deletes_a_run_and_a_sweep_reruns_it(tmp_path, capsys):
    import sqlite3

    from rethink.lifecycle import RunLock

    db = tmp_path / "r.db"
    ids = {}
    for corruption in ("none", "random-labels"):
        argv = ["run", *ARGS, "--corruption", corruption, "--max-epochs", "2", "--store", str(db)]
        code, out, err = run_cli([*argv, "--json"], capsys)
        assert code == 0, err
        ids[corruption] = json.loads(out.strip().splitlines()[-1])["run_id"]
    gone, kept = ids["random-labels"], ids["none"]
    with Store(db) as st:  # measures kept in the same file go with the run
        st.db.execute("CREATE TABLE measures (run_id TEXT, measure TEXT, value REAL)")
        st.db.executemany("INSERT INTO measures VALUES (?, 'l2', 1.0)", [(gone,), (kept,)])
        st.db.commit()
        assert st.checkpoint_path(gone).is_file()

    def snapshot():
        con = sqlite3.connect(db)
        try:
            return [con.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                    for t in ("runs", "epochs", "results", "measures")]  # fmt: skip
        finally:
            con.close()

    before = snapshot()
    for bad, needle in (([" "], "empty run id"), (["0" * 16], "has no run"),
                        ([gone[:6], "0" * 16], "has no run")):  # fmt: skip
        args = [a for k in bad for a in ("--forget", k)]
        code, _, err = run_cli(["runs", "--store", str(db), *args], capsys)
        assert code == 2 and err.startswith("error: ") and needle in err, err
    lock = RunLock(db, gone)  # a run being trained is not forgotten
    try:
        code, _, err = run_cli(["runs", "--store", str(db), "--forget", gone[:6]], capsys)
        assert code == 2 and "being trained" in err
    finally:
        lock.release()
    assert snapshot() == before  # refused: all or nothing
    code, out, err = run_cli(["runs", "--store", str(db), "--forget", gone[:6], "--json"], capsys)
    assert code == 0, err
    obj = json.loads(out.strip().splitlines()[-1])
    assert [f["run_id"] for f in obj["forgot"]] == [gone] and obj["forgot"][0]["epochs"] == 3
    assert [r["run_id"] for r in obj["runs"]] == [kept]
    with Store(db, readonly=True) as st:
        assert st.epoch_numbers(gone) == [] and st.epoch_numbers(kept) == [0, 1, 2]
        assert not st.checkpoint_path(gone).exists() and st.checkpoint_path(kept).is_file()
        assert [tuple(r) for r in st.db.execute("SELECT run_id FROM measures")] == [(kept,)]
    argv = ["run", *ARGS, "--corruption", "random-labels", "--max-epochs", "2", "--store", str(db)]
    code, out, err = run_cli([*argv, "--json"], capsys)  # trained again, not "already finished"
    assert code == 0 and "already" not in err
    with Store(db, readonly=True) as st:
        assert st.epoch_numbers(gone) == [0, 1, 2] and st.get_run(gone)["status"] == "finished"
