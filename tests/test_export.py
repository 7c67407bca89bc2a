"""rethink export: each format read back by its own library (pandas/pyarrow, TensorBoard's
EventAccumulator, MLflow's client); CSV keeps every column; bad input is one sentence."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from rethink.cli import main
from rethink.errors import RethinkError
from rethink.export import export, run_row
from rethink.spec import RunSpec
from rethink.store import Store


def _write_run(st, spec, sweep, label, test_accs, status="finished"):
    spec = spec.normalized()
    rid = spec.run_id()
    st.begin_run(rid, spec.to_dict(), sweep=sweep, label=label)
    for e, acc in enumerate(test_accs):
        st.append_epoch(
            rid,
            {
                "epoch": e,
                "step": 7 * e,
                "train_loss": 2.0 / (e + 1),
                "train_acc": 0.2 * e,
                "test_loss": None if acc is None else 1.0 + e,
                "test_acc": acc,
                "lr": 0.01,
                "seconds": 1.5,
                "changed_acc": 0.05 * e,
            },
        )
    result = {
        "epochs": len(test_accs) - 1,
        "epochs_to_fit": None,
        "steps_to_fit": None,
        "train_acc": 0.8,
        "test_acc": 0.3,
        "best_test_acc": 0.3,
        "params": 1000,
        "seconds": 4.5,
    }
    st.finish(rid, status, result)
    return rid


@pytest.fixture()
def store(tmp_path):
    db = tmp_path / "s.db"
    base = RunSpec.from_dict({"dataset": "digits", "model.name": "mlp-1x512"})
    with Store(db) as st:
        a = _write_run(st, base, "fig1a", "true labels seed=0", [0.1, 0.2, None, 0.3])
        b = _write_run(
            st,
            base.override({"labels": "random-labels", "train_size": 500}),
            "fig1a",
            "random labels seed=0",
            [0.1, 0.1, 0.1],
        )
        c = _write_run(st, base.override({"seed": 3}), None, "", [0.1, 0.15], status="failed")
    return db, (a, b, c)


def test_parquet_round_trips_with_dtypes(store, tmp_path):
    pytest.importorskip("pyarrow", reason="the parquet extra is not installed: rethink[parquet]")
    db, (a, b, c) = store
    files = export(db, "parquet", tmp_path / "pq")
    assert [f.name for f in files] == ["runs.parquet", "epochs.parquet"]
    runs = pd.read_parquet(files[0]).set_index("run_id")
    assert list(runs.index) == [a, b, c]
    assert runs.loc[b, "corruption.kind"] == "random-labels"
    assert str(runs["data.train_size"].dtype) == "Int64"  # None for a, b has 500
    assert runs.loc[b, "data.train_size"] == 500 and pd.isna(runs.loc[a, "data.train_size"])
    assert runs["train.lr"].dtype == "float64" and runs["seed"].dtype == "int64"
    assert runs["train.until_fit"].dtype == "bool"
    assert str(runs["created"].dtype).startswith("datetime64") and runs["created"].dt.tz
    assert runs.loc[c, "status"] == "failed" and runs.loc[a, "sweep"] == "fig1a"
    assert runs.loc[a, "result.test_acc"] == pytest.approx(0.3)
    assert runs["result.params"].dtype == "int64"
    assert runs.loc[a, "versions.torch"]  # the versions the store keeps, not dropped
    ep = pd.read_parquet(files[1])
    assert len(ep) == 4 + 3 + 2 and ep["epoch"].dtype == "int64"
    one = ep[ep["run_id"] == a].set_index("epoch")
    assert math.isnan(one.loc[2, "test_acc"]) and one.loc[3, "test_acc"] == pytest.approx(0.3)
    assert one.loc[3, "changed_acc"] == pytest.approx(0.15)  # extra per-epoch keys kept


def test_csv_keeps_every_column(store, tmp_path):
    db, (a, b, c) = store
    files = export(db, "csv", tmp_path / "csv", runs=[a[:6], b])
    runs = pd.read_csv(files[0])
    assert list(runs["run_id"]) == [a, b]
    for col in ("versions.torch", "versions.rethink", "data.dataset", "result.test_acc", "host"):
        assert col in runs.columns
    assert set(pd.read_csv(files[1])["run_id"]) == {a, b}


def test_provenance_becomes_columns_and_stores_without_it_work():
    run = {
        "run_id": "r1",
        "spec": {"data": {"dataset": "digits"}, "seed": 0},
        "status": "finished",
        "versions": {"torch": "2.13.0"},
        "provenance": json.dumps({"threads": 2, "device": "cpu", "git": {"commit": "abc"}}),
        "result": None,
    }
    run["attempts"] = 3  # a column a newer store may add: kept too
    row = run_row(run)
    assert row["attempts"] == 3
    assert row["provenance.threads"] == 2 and row["provenance.device"] == "cpu"
    assert row["provenance.git.commit"] == "abc" and row["versions.torch"] == "2.13.0"
    del run["provenance"]
    assert not any(k.startswith("provenance.") for k in run_row(run))


def test_tensorboard_read_back_by_event_accumulator(store, tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    db, (a, b, c) = store
    out = tmp_path / "tb"
    dirs = export(db, "tensorboard", out)
    assert [d.relative_to(out).as_posix() for d in dirs] == [
        f"fig1a/{a}",
        f"fig1a/{b}",
        f"_no_sweep_/{c}",
    ]
    export(db, "tensorboard", out)  # again: replaced, not duplicated
    acc = EventAccumulator(str(dirs[0]), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "step"):
        assert tag in tags["scalars"], tag
    test = [(e.step, round(e.value, 6)) for e in acc.Scalars("test_acc")]
    assert test == [(0, 0.1), (1, 0.2), (3, 0.3)]  # epoch 2 was not evaluated
    assert [e.step for e in acc.Scalars("changed_acc")] == [0, 1, 2, 3]
    assert acc.Scalars("result/test_acc")[0].value == pytest.approx(0.3)
    text = acc.Tensors("spec/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"dataset": "digits"' in text
    prov = acc.Tensors("provenance/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"torch"' in prov
    plugins = acc.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in plugins and "_hparams_/session_start_info" in plugins
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(
        plugins["_hparams_/session_start_info"]
    ).session_start_info
    assert start.hparams["data.dataset"].string_value == "digits"
    assert start.hparams["train.lr"].number_value == pytest.approx(0.01)


def test_mlflow_read_back_by_its_client(store, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: rethink[mlflow]")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    db, (a, b, c) = store
    out = tmp_path / "ml"
    export(db, "mlflow", out)
    export(db, "mlflow", out)  # again: replaced, not duplicated
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    names = sorted(e.name for e in client.search_experiments())
    assert "fig1a" in names and "(no sweep)" in names
    exp = client.get_experiment_by_name("fig1a")
    found = client.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["rethink.run_id"] for r in found) == sorted([a, b])
    ra = next(r for r in found if r.data.tags["rethink.run_id"] == a)
    assert ra.data.params["data.dataset"] == "digits" and ra.data.params["train.lr"] == "0.01"
    assert ra.data.tags["versions.torch"] and ra.info.status == "FINISHED"
    hist = client.get_metric_history(ra.info.run_id, "test_acc")
    assert sorted((m.step, round(m.value, 6)) for m in hist) == [(0, 0.1), (1, 0.2), (3, 0.3)]
    assert len(client.get_metric_history(ra.info.run_id, "train_loss")) == 4
    assert ra.data.metrics["result.test_acc"] == pytest.approx(0.3)
    other = client.get_experiment_by_name("(no sweep)")
    (rc,) = client.search_runs([other.experiment_id])
    assert rc.info.status == "FAILED"


def test_missing_extra_is_one_sentence(store, tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name == "pyarrow":
            raise ImportError("no pyarrow")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(RethinkError, match=r"pip install 'rethink\[parquet\]'"):
        export(store[0], "parquet", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cli_export_and_bad_input(store, tmp_path, capsys):
    db, (a, b, c) = store
    with pytest.raises(SystemExit) as exc:
        main(["export", str(db), "--to", "csv", "--out", str(tmp_path / "o"), "--json"])
    assert exc.value.code in (0, None)
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["files"][0].endswith("runs.csv")
    (tmp_path / "file").write_text("x")
    bad = [
        [str(tmp_path / "missing.db"), "--to", "csv", "--out", str(tmp_path / "m")],
        [str(db), "--to", "excel", "--out", str(tmp_path / "e")],
        [str(db), "--to", "csv", "--out", str(tmp_path / "file")],
        [str(db), "--to", "csv", "--out", str(tmp_path / "r"), "--runs", "zzzz"],
        [str(db), "--to", "csv", "--out", str(tmp_path / "w"), "--sweep", "nope"],
    ]
    for args in bad:
        with pytest.raises(SystemExit) as exc:
            main(["export", *args])
        assert exc.value.code == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, err
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", ["export", "report"])
def test_help_shows_flags_without_a_value_type(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert "--json" in out and "<bool>" not in out
    if command == "export":
        assert "rethink[parquet]" in out
