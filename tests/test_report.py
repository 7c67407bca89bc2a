"""Reports: tables hold the store's numbers with the paper's beside them; figures; HTML."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest

from rethink import paper
from rethink.cli import main
from rethink.report import write_report
from rethink.spec import RunSpec
from rethink.store import Store


def _fake_run(
    st: Store,
    spec: RunSpec,
    label: str,
    train_acc: float,
    test_acc: float,
    steps_to_fit: int | None,
    sweep: str,
    epochs: int = 4,
) -> str:
    """A run written through the Store API, as a sweep driver would (report tests need
    known numbers, not training)."""
    spec = spec.normalized()
    rid = spec.run_id()
    st.begin_run(rid, spec.to_dict(), sweep=sweep, label=label)
    for e in range(epochs + 1):
        st.append_epoch(
            rid,
            {
                "epoch": e,
                "step": 10 * e,
                "train_loss": 2.3 * (1 - e / (epochs + 1)),
                "train_acc": train_acc * e / epochs,
                "test_loss": 2.0,
                "test_acc": test_acc if e else 0.1,
                "lr": 0.01,
                "seconds": 1.0,
            },
        )
    st.finish(
        rid,
        "finished",
        {
            "epochs": epochs,
            "epochs_to_fit": epochs,
            "steps_to_fit": steps_to_fit,
            "train_acc": train_acc,
            "test_acc": test_acc,
            "best_test_acc": test_acc,
            "best_test_epoch": epochs,
            "train_loss": 0.01,
            "test_loss": 2.0,
            "params": 1209866,
            "seconds": 4.0,
        },
    )
    return rid


@pytest.fixture()
def store(tmp_path):
    return make_store(tmp_path / "r.db")


def make_store(db):
    """Table 1 rows (two seeds pooled), a p sweep and three corruptions, on CIFAR-10."""
    base = RunSpec.from_dict(
        {"dataset": "cifar10", "preprocess": "paper", "model.name": "mlp-1x512"}
    )
    with Store(db) as st:
        for seed, test in ((0, 0.50), (1, 0.52)):
            _fake_run(
                st, base.override({"seed": seed}), f"MLP 1x512 seed={seed}", 1.0, test, 400, "t1"
            )
        _fake_run(
            st,
            base.override({"labels": "random-labels"}),
            "MLP 1x512, random labels seed=0",
            0.99,
            0.101,
            None,
            "t1",
        )
        for p, steps, test in ((0.0, 100, 0.8), (0.5, 150, 0.5), (1.0, 210, 0.1)):
            _fake_run(
                st,
                base.override({"labels": "partial-labels", "corrupt_prob": p}),
                f"corruption.prob={p:g} seed=0",
                1.0,
                test,
                steps,
                "bc",
            )
        for kind, steps in (("none", 100), ("random-labels", 300), ("gaussian", 150)):
            _fake_run(
                st,
                base.override({"labels": kind, "seed": 5}),
                f"corruption.kind={kind} seed=5",
                1.0,
                0.3,
                steps,
                "a",
            )
    return db


def test_tables_hold_the_runs_numbers_and_the_papers(store, tmp_path):
    out = tmp_path / "rep"
    files = {p.name for p in write_report(store, out)}
    for stem in ("t1-results", "bc-fig1bc", "a-fig1a"):
        assert {f"{stem}.md", f"{stem}.tex", f"{stem}.csv"} <= files
    for fig in ("bc-fig1b", "bc-fig1c", "a-fig1a", "t1-curves"):
        assert {f"{fig}.png", f"{fig}.pdf"} <= files
    t1 = pd.read_csv(out / "t1-results.csv")
    true = t1[t1["setting"] == "true labels"].iloc[0]
    assert true["runs"] == 2 and true["test acc"] == pytest.approx(51.0)
    assert true["test acc sd"] == pytest.approx(pd.Series([50.0, 52.0]).std())
    row = paper.table1_row("mlp-1x512", crop=False, weight_decay=False, random_labels=False)
    assert (true["paper train"], true["paper test"]) == (row.train, row.test)
    rand = t1[t1["setting"] == "random labels"].iloc[0]
    assert rand["test acc"] == pytest.approx(10.1) and rand["paper test"] == 10.61
    md = (out / "t1-results.md").read_text()
    assert "51.00 ± 1.41" in md and "50.51" in md and "CIFAR-10" in md
    bc = pd.read_csv(out / "bc-fig1bc.csv")
    assert list(bc["relative to p=0"]) == pytest.approx([1.0, 1.5, 2.1])
    assert list(bc["test error"]) == pytest.approx([20.0, 50.0, 90.0])
    a = pd.read_csv(out / "a-fig1a.csv").set_index("setting")
    assert a.loc["random labels", "relative"] == pytest.approx(3.0)
    # the reference numbers are small Inception on CIFAR-10: not beside an MLP's
    assert "paper steps to loss<=0.1*" not in a.columns
    assert a.loc["random labels", "reference relative* (CIFAR-10, Inception (small))"] == (
        pytest.approx(16600 / 4000)
    )
    tex = (out / "a-fig1a.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\toprule" in tex and "\\bottomrule" in tex


def test_html_is_self_contained_with_specs_one_click_away(store, tmp_path):
    write_report(store, tmp_path / "h", sweeps=["t1"])
    html = (tmp_path / "h" / "report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
    assert html.count("<details") == 3 and "&quot;mlp-1x512&quot;" in html
    assert "bc-fig1bc" not in html  # only the sweep asked for


def test_report_reads_the_store_only_and_imports_no_training(store, tmp_path):
    code = (
        "import sys; from rethink.report import write_report; "
        f"write_report({str(store)!r}, {str(tmp_path / 'x')!r}); "
        "bad = [m for m in sys.modules if m.split('.')[0] == 'torch' or m in "
        "('rethink.train', 'rethink.runner', 'rethink.models', 'rethink.data')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_report_cli_and_bad_input(store, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", str(store), "--out", str(tmp_path / "c"), "--json"])
    assert exc.value.code in (0, None)
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["html"].endswith("report.html")
    for args in ([str(tmp_path / "missing.db")], [str(store), "--sweep", "nope"]):
        with pytest.raises(SystemExit) as exc:
            main(["report", *args, "--out", str(tmp_path / "d")])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
    assert not (tmp_path / "missing.db").exists()


def test_paper_numbers_are_complete():
    assert len(paper.TABLE1) == 19 and all(r.verified for r in paper.TABLE1)
    assert all(not r.verified for r in paper.TABLE4) and not paper.FIG1A_VERIFIED
    assert (
        paper.table1_row("alexnet-small", crop=True, weight_decay=True, random_labels=False).test
        == 81.22
    )
    assert paper.table4_row("alexnet-small", "weight_decay").train is None
    assert not math.isnan(paper.FIG1A_STEPS_TO_LOSS_0_1["random-labels"])


def test_report_can_be_limited_to_given_runs(store, tmp_path):
    with Store(store, readonly=True) as st:
        ids = [r["run_id"] for r in st.runs(sweep="bc")][:2]
    write_report(store, tmp_path / "ids", run_ids=ids)
    table = pd.read_csv(tmp_path / "ids" / "bc-results.csv")
    assert len(table) == 2 and not (tmp_path / "ids" / "t1-results.csv").exists()
