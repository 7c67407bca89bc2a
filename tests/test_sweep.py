"""Sweeps: expansion, bad input, the real runner inline and in worker processes, failures."""

from __future__ import annotations

import json
import sqlite3

import pytest

from rethink.cli import main
from rethink.errors import RethinkError
from rethink.spec import RunSpec
from rethink.store import Store
from rethink.sweep import load_sweep, plan_from_dict, run_sweep

TINY = {
    "data": {"dataset": "digits", "train_size": 200},
    "model": {"name": "mlp-1x32"},
    "train": {"max_epochs": 2, "lr": 0.05, "checkpoint_every": 1},
}


def test_grid_expands_in_order_with_deterministic_ids():
    doc = {"base": TINY, "axes": {"corruption.prob": [0.0, 0.5], "seed": [0, 1]}}
    plan = plan_from_dict({**doc, "base": {**TINY, "corruption": {"kind": "partial-labels"}}})
    assert len(plan) == 4
    assert [r.label for r in plan.runs][:2] == [
        "corruption.prob=0 seed=0",
        "corruption.prob=0 seed=1",
    ]
    again = plan_from_dict({**doc, "base": {**TINY, "corruption": {"kind": "partial-labels"}}})
    assert [r.run_id for r in plan.runs] == [r.run_id for r in again.runs]
    spec = RunSpec.from_dict(TINY).override({"labels": "partial-labels", "corrupt_prob": 0.5})
    assert spec.run_id() in {r.run_id for r in plan.runs}  # same spec, same id, anywhere


def test_include_variants_cross_axes_and_dedupe():
    doc = {
        "base": TINY,
        "axes": {"seed": [0, 1]},
        "include": [
            {"label": "true"},
            {"label": "random", "labels": "random-labels"},
            {"label": "same as true", "corruption.prob": 0.7},  # prob is ignored for 'none'
        ],
    }
    plan = plan_from_dict(doc)
    assert len(plan) == 4
    assert plan.runs[2].label == "random seed=0"


def test_scales_override_base_and_replace_axes():
    doc = {
        "name": "x",
        "base": {**TINY, "train": {"max_epochs": 50, "lr": 0.1}},
        "axes": {"seed": [0, 1, 2], "lr": [0.1, 0.2]},
        "scales": {"smoke": {"base": {"train.max_epochs": 1}, "axes": {"seed": [7]}}},
    }
    plan = plan_from_dict(doc, scale="smoke")
    assert plan.name == "x-smoke" and len(plan) == 2
    assert {r.spec.train.max_epochs for r in plan.runs} == {1}
    assert {r.spec.seed for r in plan.runs} == {7}
    assert {r.spec.train.lr for r in plan.runs} == {0.1, 0.2}
    with pytest.raises(RethinkError, match="no scale 'gpu'"):
        plan_from_dict(doc, scale="gpu")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[base\nx = 1", "not valid TOML"),
        ("colour = 1\n[base]\n", "unknown sweep key 'colour'"),
        ("[axes]\nlearning_rate = [0.1]\n", "unknown spec key 'learning_rate'"),
        ("[axes]\nlr = 0.1\n", "must be a non-empty list"),
        ("[axes]\nlr = [-1.0]\n", "train.lr must be positive"),
        ('[base]\nmodel = { name = "mlp-wide" }\n', "unknown model"),
        ('[base]\ndata = { dataset = "imagenet22k" }\n', "unknown dataset"),
        ("[scales.cpu]\nbogus = 1\n", "unknown key 'bogus'"),
    ],
)
def test_bad_sweep_file_is_one_sentence_exit_2_and_store_untouched(tmp_path, capsys, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    store = tmp_path / "s.db"
    with Store(store) as st:  # an existing store must be left exactly as it was
        st.begin_run("keep", {"x": 1})
    before = _dump(store)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(f), "--store", str(store)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert _dump(store) == before


def _dump(path) -> list:
    db = sqlite3.connect(path)
    try:
        return [db.execute(f"SELECT * FROM {t}").fetchall() for t in ("runs", "epochs", "results")]
    finally:
        db.close()


def _sweep_file(tmp_path, axes: dict, base: dict | None = None, name: str = "t"):
    import tomllib  # noqa: F401  (3.11+; the plan reads TOML the same way)

    lines = [f'name = "{name}"', "[base]"]
    for sec, table in (base or TINY).items():
        items = ", ".join(f"{k} = {json.dumps(v)}" for k, v in table.items())
        lines.append(f"{sec} = {{ {items} }}")
    lines.append("[axes]")
    lines += [f'"{k}" = {json.dumps(v)}' for k, v in axes.items()]
    f = tmp_path / f"{name}.toml"
    f.write_text("\n".join(lines) + "\n")
    return f


def test_inline_sweep_runs_skips_and_records_failures_and_divergence(tmp_path):
    # one run cannot load its data (fails), one diverges (lr 1e10); the rest still finish
    f = _sweep_file(
        tmp_path,
        {"data.dataset": ["digits", "imagefolder:/nonexistent/folder"], "lr": [0.05, 1e10]},
    )
    plan = load_sweep(f)
    db = tmp_path / "s.db"
    s = run_sweep(plan, db)
    assert s.total == 4 and s.failed == 2 and s.finished + s.diverged == 2 and s.diverged >= 1
    with Store(db, readonly=True) as st:
        runs = {r["run_id"]: r for r in st.runs()}
        failed = [r for r in runs.values() if r["status"] == "failed"]
        assert len(failed) == 2 and all(r["error"] for r in failed)
        for r in runs.values():
            if r["status"] == "finished":
                eps = [e["epoch"] for e in st.epochs(r["run_id"])]
                assert eps == [0, 1, 2]
                assert r["result"]["epochs"] == 2 and 0 <= r["result"]["train_acc"] <= 1
                assert r["sweep"] == "t" and "data.dataset=digits" in r["label"]
    again = run_sweep(plan, db)  # done runs are skipped, failed ones are tried again
    assert again.skipped == 2 and again.failed == 2 and again.finished == 0


def test_local_jobs_match_inline_results(tmp_path):
    f = _sweep_file(tmp_path, {"labels": ["none", "random-labels"], "seed": [0, 1]})
    plan = load_sweep(f)
    s = run_sweep(plan, tmp_path / "jobs.db", jobs=2)
    assert s.finished == 4 and s.failed == 0, s.errors
    with Store(tmp_path / "jobs.db", readonly=True) as st:
        for r in st.runs():
            assert [e["epoch"] for e in st.epochs(r["run_id"])] == [0, 1, 2]
            assert r["status"] == "finished" and r["result"]["params"] > 0
        assert not any(st.checkpoint_dir.glob("*.pt"))  # finished runs need no checkpoint


def test_cli_json_summary_and_dry_run(tmp_path, capsys):
    f = _sweep_file(tmp_path, {"seed": [0, 1]})
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(f), "--dry-run"])
    assert exc.value.code in (0, None)
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    db = tmp_path / "c.db"
    for expected_skipped in (0, 2):
        with pytest.raises(SystemExit) as exc:
            main(["sweep", str(f), "--store", str(db), "--json"])
        assert exc.value.code in (0, None)
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["skipped"] == expected_skipped and out["total"] == 2
        assert out["finished"] == 2 - expected_skipped


def test_bad_options_exit_2(tmp_path, capsys):
    f = _sweep_file(tmp_path, {"seed": [0]})
    for args in (["--jobs", "0"], ["--backend", "slurm"], ["--address", "x:1"]):
        with pytest.raises(SystemExit) as exc:
            main(["sweep", str(f), "--store", str(tmp_path / "o.db"), *args])
        assert exc.value.code == 2
    assert not (tmp_path / "o.db").exists()


def test_sweep_resumes_like_rethink_run_and_never_from_a_final_checkpoint(tmp_path):
    # A driver killed after a run's last checkpoint but before its result was stored leaves
    # a `final` checkpoint: like `rethink run`, the sweep starts that run over instead.
    from rethink import runner
    from rethink.sweep._driver import _Writer

    plan = load_sweep(_sweep_file(tmp_path, {"seed": [0]}))
    (run,) = plan.runs
    states = []
    runner.execute(run.spec, on_checkpoint=lambda epoch, state: states.append(state))
    with Store(tmp_path / "s.db") as st:
        writer = _Writer(st, plan, None)
        ckpt = st.checkpoint_path(run.run_id)
        runner.save_checkpoint(ckpt, states[0])  # mid-run: resumed from
        assert not states[0].get("final")
        assert writer.prepare(run.run_id) == str(ckpt)
        runner.save_checkpoint(ckpt, states[-1])  # the run's end: started over
        assert states[-1].get("final")
        assert writer.prepare(run.run_id) is None
        ckpt.write_bytes(b"torn")  # unreadable: started over, no error
        assert writer.prepare(run.run_id) is None
