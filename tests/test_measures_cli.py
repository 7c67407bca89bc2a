"""End to end: train a few tiny runs into a store, then `rethink measures --json` on it."""

from __future__ import annotations

import json
import sqlite3

import pytest
from _cli import run_cli

from rethink import measures, runner
from rethink.spec import RunSpec


def _spec(kind: str, prob: float | None = None, wd: float = 0.0) -> RunSpec:
    d = {
        "data": {"dataset": "digits", "train_size": 200},
        "corruption": {"kind": kind},
        "model": {"name": "mlp-1x16"},
        "train": {"lr": 0.05, "max_epochs": 2, "weight_decay": wd},
    }
    if prob is not None:
        d["corruption"]["prob"] = prob
    return RunSpec.from_dict(d)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("measures") / "runs.db"
    for spec in (_spec("none"), _spec("none", wd=0.01), _spec("partial-labels", 0.5),
                 _spec("random-labels")):  # fmt: skip
        assert runner.run(spec, store=path)["status"] == "finished"
    yield path
    torch.set_num_threads(before)


def test_measures_json_on_a_fresh_store(store, capsys):
    code, out, err = run_cli(["measures", str(store), "--json", "--sample", "150"], capsys)
    assert code == 0, err
    doc = json.loads(out.strip().splitlines()[-1])
    assert set(doc) == {"measures", "scores"}
    names = measures.names()
    assert len(doc["measures"]) == 4 * len(names)
    assert all(set(r) == {"run_id", "measure", "value"} for r in doc["measures"])
    by = {(r["run_id"], r["measure"]): r["value"] for r in doc["measures"]}
    assert all(by[(rid, "params")] == 64 * 16 + 16 + 16 * 10 + 10 for rid, _ in by)
    assert len(doc["scores"]) == 2 * len(names)
    for s in doc["scores"]:
        assert {"measure", "kendall_tau", "granulated_tau", "pgdl_cmi", "runs"} <= set(s)
    inc = {s["measure"]: s for s in doc["scores"] if s["random_labels"] == "included"}
    exc = {s["measure"]: s for s in doc["scores"] if s["random_labels"] == "excluded"}
    assert inc["dist_init"]["runs"] == 4 and exc["dist_init"]["runs"] == 3
    assert "[4/4]" in err and "ETA" in err
    # a second call computes nothing: every value is stored
    code, out, err = run_cli(["measures", str(store), "--json", "--only", "params"], capsys)
    assert code == 0 and "all 1 measures stored" in err
    db = sqlite3.connect(store)
    assert db.execute("SELECT COUNT(*) FROM measures").fetchone() == (4 * len(names),)
    used = dict(db.execute("SELECT measure, MAX(sample) FROM measures GROUP BY measure"))
    assert used["inverse_margin"] == 150 and used["hessian_trace"] == 150 and used["params"] == 0


def test_force_recomputes_and_only_limits(store, capsys):
    code, out, err = run_cli(
        ["measures", str(store), "--json", "--only", "hessian_trace,params", "--force"], capsys
    )
    assert code == 0, err
    doc = json.loads(out.strip().splitlines()[-1])
    assert {r["measure"] for r in doc["measures"]} == {"params", "hessian_trace"}
    assert "2 measures in" in err


def test_bad_input_is_one_sentence(store, tmp_path, capsys):
    code, _, err = run_cli(["measures", str(store), "--only", "vc_dimension"], capsys)
    assert code == 2 and err.startswith("error: unknown measure 'vc_dimension'")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["measures", str(tmp_path / "none.db")], capsys)
    assert code == 2 and "no store" in err
    code, _, err = run_cli(["measures", str(store), "--runs", "ffffffff"], capsys)
    assert code == 2 and "no run" in err


def test_a_run_without_checkpoint_is_refused_with_the_reason(store, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy.db"
    shutil.copy(store, copy)
    code, _, err = run_cli(["measures", str(copy)], capsys)
    assert code == 2
    assert "no final checkpoint" in err and err.count("no final checkpoint") == 4


def test_python_api_and_report(store, tmp_path):
    rows = measures.compute(store, only=["params", "log_spectral_product"])
    assert len(rows) == 8
    scores = measures.score(store, only="log_spectral_product")
    assert [s["random_labels"] for s in scores] == ["included", "excluded"]
    measures.compute(store, sample=150)  # whatever is missing (all of it if run alone)
    files = measures.write_measures_report(store, tmp_path / "report")
    names = {p.name for p in files}
    assert {"measures-ranking.md", "measures-ranking.csv", "measures-best.png"} <= names
    text = (tmp_path / "report" / "measures-ranking.md").read_text()
    assert "| 1 |" in text and "`" in text
    from rethink.measures._report import report_section
    from rethink.report._html import write_html

    _, section = report_section(store, tmp_path / "r2")
    page = write_html(tmp_path / "r2" / "report.html", "t", [section]).read_text()
    assert "ranked by Kendall" in page and page.count("<img") == 2


def test_measures_preset_is_a_grid_of_one_axis_variants_times_label_noise():
    from rethink.measures import hyperparameter_axes
    from rethink.sweep import load_sweep, preset_path

    for scale, n in (("smoke", 4), ("cpu", 48), ("paper", 48)):
        plan = load_sweep(preset_path("measures"), scale=scale)
        assert len(plan) == n and plan.meta.get("runtime") and plan.meta.get("expect")
    cpu = load_sweep(preset_path("measures"), scale="cpu").runs
    assert all(r.spec.train.until_fit and r.spec.train.max_epochs == 200 for r in cpu)
    assert {r.spec.corruption.prob for r in cpu} == {0.0, 0.2, 0.4, 0.6, 0.8, 1.0}
    axes = hyperparameter_axes([r.spec.to_dict() for r in cpu])
    assert set(axes[0]) == {
        "corruption.prob", "model.name", "train.lr", "train.batch_size",
        "train.weight_decay", "model.dropout", "data.train_size",
    }  # fmt: skip


def test_measure_run_reports_each_group(store):
    from rethink.measures import _compute as C
    from rethink.store import Store

    said = []
    with Store(store) as st:
        run = st.runs()[0]
        out = C.measure_run(st, run, ["norms", "margin", "optimization"], sample=100,
                            on_group=lambda g, s: said.append((g, s)))  # fmt: skip
    assert [g for g, _ in said] == ["norms", "margin", "optimization"]
    assert all(s >= 0 for _, s in said) and "params" in out and "steps_to_fit" in out
