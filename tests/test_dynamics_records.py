"""Per-example records in the store: round trip, idempotent rewrite, truncate + resume, and the
`rethink dynamics export / scores` commands on a store built by hand (no training)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rethink.cli import main
from rethink.dynamics import _records as R
from rethink.errors import RethinkError
from rethink.store import Store

N = 37
SPEC = {
    "data": {"dataset": "digits"},
    "corruption": {"kind": "partial-labels", "prob": 0.4},
    "model": {"name": "mlp-1x64"},
    "seed": 0,
}


def epoch_arrays(epoch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    margin = rng.normal(epoch - 3, 2, N).astype(np.float16)
    return {
        "correct": margin > 0,
        "margin": margin,
        "loss": np.abs(rng.normal(1, 1, N)).astype(np.float16),
        "pred": rng.integers(0, 10, N).astype(np.uint8),
    }


def make_store(path, run_id="feedc0de00000001", epochs=range(6), seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 10, N)
    changed = rng.random(N) < 0.4
    labels = np.where(changed, (clean + 1) % 10, clean)
    written = {}
    with Store(path) as st:
        st.begin_run(run_id, SPEC)
        R.write_run_arrays(st.db, run_id, labels, clean, changed)
        for e in epochs:
            written[e] = epoch_arrays(e, rng)
            R.write_epoch(st.db, run_id, e, written[e])
    return labels, clean, changed, written


def test_round_trip_keeps_dtypes_and_values(tmp_path):
    db = tmp_path / "runs.db"
    labels, clean, changed, written = make_store(db)
    with Store(db, readonly=True) as st:
        rec = R.load(st.db, "feedc0de00000001")
        assert R.record_runs(st.db) == ["feedc0de00000001"]
    np.testing.assert_array_equal(rec["epochs"], np.arange(6))
    for f in ("correct", "margin", "loss", "pred"):
        assert rec[f].shape == (6, N)
        assert rec[f].dtype == written[0][f].dtype
        np.testing.assert_array_equal(rec[f], np.stack([written[e][f] for e in range(6)]))
    np.testing.assert_array_equal(rec["labels"], labels)
    np.testing.assert_array_equal(rec["clean_labels"], clean)
    np.testing.assert_array_equal(rec["changed"], changed)
    assert not rec["threshold"].any()


def test_rewriting_an_epoch_replaces_it(tmp_path):
    db = tmp_path / "runs.db"
    make_store(db, epochs=range(3))
    new = epoch_arrays(9, np.random.default_rng(5))
    with Store(db) as st:
        R.write_epoch(st.db, "feedc0de00000001", 1, new)
        R.write_epoch(st.db, "feedc0de00000001", 1, new)
        rec = R.load(st.db, "feedc0de00000001")
        n_rows = st.db.execute("SELECT COUNT(*) FROM example_epochs").fetchone()[0]
    np.testing.assert_array_equal(rec["epochs"], [0, 1, 2])
    np.testing.assert_array_equal(rec["margin"][1], new["margin"])
    assert n_rows == 3 * 4


def test_truncate_then_rewrite_is_a_resume_with_every_epoch_once(tmp_path):
    # killed after epoch 7 with its last checkpoint at epoch 5: the resumed run drops 6-7
    # and writes 6-9 again; the result equals an uninterrupted run's records
    db = tmp_path / "runs.db"
    _, _, _, first = make_store(db, epochs=range(8), seed=1)
    rng = np.random.default_rng(2)
    redo = {e: epoch_arrays(e, rng) for e in range(6, 10)}
    with Store(db) as st:
        R.truncate(st.db, "feedc0de00000001", 5)
        assert list(R.load(st.db, "feedc0de00000001")["epochs"]) == list(range(6))
        for e, a in redo.items():
            R.write_epoch(st.db, "feedc0de00000001", e, a)
        rec = R.load(st.db, "feedc0de00000001")
    np.testing.assert_array_equal(rec["epochs"], np.arange(10))
    want = [first[e]["loss"] for e in range(6)] + [redo[e]["loss"] for e in range(6, 10)]
    np.testing.assert_array_equal(rec["loss"], np.stack(want))


def test_bad_writes_are_refused(tmp_path):
    with Store(tmp_path / "runs.db") as st:
        with pytest.raises(RethinkError, match="no example records"):
            R.write_epoch(st.db, "nope", 0, epoch_arrays(0, np.random.default_rng(0)))
        R.write_run_arrays(st.db, "r1", np.zeros(N), np.zeros(N), np.zeros(N, bool))
        short = {k: v[:-1] for k, v in epoch_arrays(0, np.random.default_rng(0)).items()}
        with pytest.raises(ValueError, match="shape"):
            R.write_epoch(st.db, "r1", 0, short)
        with pytest.raises(ValueError, match="missing"):
            R.write_epoch(st.db, "r1", 0, {"correct": np.zeros(N, bool)})
        with pytest.raises(ValueError):
            R.write_run_arrays(st.db, "r2", np.zeros(N), np.zeros(N - 1), np.zeros(N, bool))
        assert R.load(st.db, "r1")["correct"].shape == (0, N)


def test_a_store_without_records_is_read_without_creating_tables(tmp_path):
    db = tmp_path / "runs.db"
    with Store(db) as st:
        st.begin_run("r0", SPEC)
    with Store(db, readonly=True) as st:
        assert not R.has_records(st.db) and R.record_runs(st.db) == []
        with pytest.raises(RethinkError, match="no example records"):
            R.load(st.db, "r0")


def test_cli_export_round_trips(tmp_path, capsys):
    db = tmp_path / "runs.db"
    labels, clean, changed, written = make_store(db)
    out = tmp_path / "x" / "rec.npz"
    with pytest.raises(SystemExit) as exc:
        main(["dynamics", "export", str(db), "feedc0de", "--out", str(out), "--json"])
    assert exc.value.code in (0, None)
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info == {"run_id": "feedc0de00000001", "out": str(out), "epochs": 6, "examples": N}
    with np.load(out, allow_pickle=False) as z:
        assert set(z.files) == {
            "correct", "margin", "loss", "pred", "epochs", "changed", "labels", "clean_labels"
        }  # fmt: skip
        for f in ("correct", "margin", "loss", "pred"):
            np.testing.assert_array_equal(z[f], np.stack([written[e][f] for e in range(6)]))
        np.testing.assert_array_equal(z["epochs"], np.arange(6))
        np.testing.assert_array_equal(z["labels"], labels)
        np.testing.assert_array_equal(z["clean_labels"], clean)
        np.testing.assert_array_equal(z["changed"], changed)


@pytest.mark.parametrize(
    "args, says",
    [
        (["export", "{tmp}/none.db", "r", "--out", "{tmp}/o.npz"], "no store at"),
        (["export", "{db}", "deadbeef", "--out", "{tmp}/o.npz"], "has no run deadbeef"),
        (["export", "{db}", "r0", "--out", "{tmp}/o.npz"], "has no example records"),
        (["export", "{db}", "feedc0de", "--out", "{tmp}/o.txt"], "must name a .npz"),
        (["scores", "{tmp}/none.db"], "no store at"),
        (["scores", "{db}", "--runs", "zzz"], "has no run zzz"),
    ],
)
def test_cli_errors_are_one_sentence(tmp_path, capsys, args, says):
    db = tmp_path / "runs.db"
    make_store(db)
    with Store(db) as st:
        st.begin_run("r0", SPEC)
    argv = [a.format(tmp=tmp_path, db=db) for a in args]
    with pytest.raises(SystemExit) as exc:
        main(["dynamics", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and says in err


def test_cli_scores_prints_the_detection_table(tmp_path, capsys):
    db = tmp_path / "runs.db"
    make_store(db)
    with pytest.raises(SystemExit) as exc:
        main(["dynamics", "scores", str(db), "--json"])
    assert exc.value.code in (0, None)
    runs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["runs"]
    assert [r["run_id"] for r in runs] == ["feedc0de00000001"]
    names = [row["score"] for row in runs[0]["detection"]]
    assert "AUM" in names and "forgetting events" in names
    assert all(0.0 <= row["roc_auc"] <= 1.0 for row in runs[0]["detection"])
    with pytest.raises(SystemExit):
        main(["dynamics", "scores", str(db)])
    text = capsys.readouterr().out
    assert "ROC-AUC" in text and "uniform p=0.4" in text
