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
            {"label": "same as true", "corruption.prob": 0.0},  # 'none' means p = 0
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


_OK = '[base]\ndata = { dataset = "digits" }\nmodel = { name = "mlp-1x64" }\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[base\nx = 1", "not valid TOML"),
        ("colour = 1\n[base]\n", "unknown sweep key 'colour'"),
        ("[axes]\nlearning_rate = [0.1]\n", "unknown spec key 'learning_rate'"),
        ("[axes]\nlr = 0.1\n", "must be a non-empty list"),
        (_OK + "[axes]\nlr = [-1.0]\n", "train.lr must be positive"),
        (_OK + "[axes]\nlr = [inf]\n", "must be a finite number"),
        ('[base]\ndata = { dataset = "digits" }\nmodel = { name = "mlp-wide" }\n', "unknown model"),
        (
            '[base]\nmodel = { name = "mlp-1x64" }\ndata = { dataset = "imagenet22k" }\n',
            "unknown dataset",
        ),
        ('[base]\nmodel = { name = "mlp-1x64" }\n', "no dataset given"),
        (
            '[base]\ndata = { dataset = "digits", train_size = 99999 }\n'
            'model = { name = "mlp-1x64" }\n',
            "train-size must be between 1 and",
        ),
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


def test_a_sweep_with_missing_data_is_refused_before_any_run_starts(tmp_path):
    f = _sweep_file(
        tmp_path,
        {"data.dataset": ["digits", "imagefolder:/nonexistent/folder"], "lr": [0.05]},
    )
    plan = load_sweep(f)
    db = tmp_path / "s.db"
    with pytest.raises(RethinkError, match="does not exist"):
        run_sweep(plan, db)
    assert not db.exists()  # nothing was created, locked or written


def test_inline_sweep_runs_skips_and_records_failures_and_divergence(tmp_path):
    # one run diverges (lr 1e10), one fails in training (a worker error); the rest finish
    f = _sweep_file(tmp_path, {"lr": [0.05, 1e10], "seed": [0, 1]})
    plan = load_sweep(f)
    db = tmp_path / "s.db"
    s = run_sweep(plan, db)
    assert s.total == 4 and s.failed == 0 and s.finished == 2 and s.diverged == 2
    with Store(db, readonly=True) as st:
        runs = {r["run_id"]: r for r in st.runs()}
        for r in runs.values():
            if r["status"] == "finished":
                eps = [e["epoch"] for e in st.epochs(r["run_id"])]
                assert eps == [0, 1, 2]
                assert r["result"]["epochs"] == 2 and 0 <= r["result"]["train_acc"] <= 1
                assert r["sweep"] == "t" and "lr=0.05" in r["label"]
                assert r["provenance"]["threads"] >= 1 and r["provenance"]["data_sha256"]
            assert st.checkpoint_path(r["run_id"]).is_file()  # final weights are kept
    again = run_sweep(plan, db)  # done runs are skipped
    assert again.skipped == 4 and again.finished == 0


def test_local_jobs_match_inline_results(tmp_path):
    f = _sweep_file(tmp_path, {"labels": ["none", "random-labels"], "seed": [0, 1]})
    plan = load_sweep(f)
    s = run_sweep(plan, tmp_path / "jobs.db", jobs=2)
    assert s.finished == 4 and s.failed == 0, s.errors
    with Store(tmp_path / "jobs.db", readonly=True) as st:
        for r in st.runs():
            assert [e["epoch"] for e in st.epochs(r["run_id"])] == [0, 1, 2]
            assert r["status"] == "finished" and r["result"]["params"] > 0
        # the final checkpoint of every finished run is kept (its weights: rethink.measures)
        assert len(list(st.checkpoint_dir.glob("*.pt"))) == 4


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
    # The driver begins runs through the same Recorder as `rethink run`: a mid-run checkpoint
    # whose epochs the store holds is resumed; a final, torn or too-new one starts over.
    from rethink import runner
    from rethink.lifecycle import save_checkpoint
    from rethink.sweep._driver import _Writer

    plan = load_sweep(_sweep_file(tmp_path, {"seed": [0]}))
    (run,) = plan.runs
    states, rows = [], []
    runner.execute(
        run.spec,
        on_checkpoint=lambda epoch, state: states.append(state),
        on_epoch=lambda r: rows.append(r.metrics()),
    )
    notes = []
    with Store(tmp_path / "s.db") as st:
        ckpt = st.checkpoint_path(run.run_id)

        def prepare():
            writer = _Writer(st, plan, None, notes.append)
            try:
                return writer.prepare(run.run_id)
            finally:
                writer.close()

        mid = states[0]
        assert not mid.get("final") and mid["epoch"] == 1
        st.begin_run(run.run_id, run.spec.normalized().to_dict())
        save_checkpoint(ckpt, mid)
        assert prepare() is None  # the store holds no epoch of it: too new, started over
        assert "store holds no epochs" in notes[-1]
        for row in rows[:2]:
            st.append_epoch(run.run_id, row)
        save_checkpoint(ckpt, mid)
        assert prepare() == str(ckpt)  # epochs 0-1 held: resumed
        save_checkpoint(ckpt, states[-1])  # the run's end: started over, silently
        assert states[-1].get("final")
        n = len(notes)
        assert prepare() is None and len(notes) == n
        ckpt.write_bytes(b"torn")  # unreadable: started over, and a notice names the file
        assert prepare() is None and str(ckpt) in notes[-1]
