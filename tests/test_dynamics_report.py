"""rethink.dynamics.report on a store built by hand (no training), and the memorization
preset's smoke scale end to end: sweep -> records -> scores, export, figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rethink.cli import main
from rethink.dynamics import _records as R
from rethink.dynamics.report import write_dynamics_figures
from rethink.store import Store

N, E = 300, 12


def fake_run(st: Store, run_id: str, prob: float, seed: int) -> None:
    """Changed examples are learned late (first correct at a random epoch in the second half),
    clean ones early: what the learning-order figure must show."""
    rng = np.random.default_rng(seed)
    spec = {
        "data": {"dataset": "digits"},
        "corruption": {"kind": "partial-labels", "prob": prob},
        "model": {"name": "mlp-1x64"},
        "seed": 0,
    }
    st.begin_run(run_id, spec)
    clean = rng.integers(0, 10, N)
    changed = rng.random(N) < prob
    R.write_run_arrays(st.db, run_id, np.where(changed, (clean + 3) % 10, clean), clean, changed)
    learn_at = np.where(changed, rng.integers(E // 2, E + 2, N), rng.integers(0, 4, N))
    for e in range(E):
        margin = (e - learn_at + rng.normal(0, 0.5, N)).astype(np.float16)
        arrays = {
            "correct": margin > 0,
            "margin": margin,
            "loss": np.log1p(np.exp(-margin.astype(float))).astype(np.float16),
            "pred": rng.integers(0, 10, N).astype(np.uint8),
        }
        R.write_epoch(st.db, run_id, e, arrays)
        row = {"epoch": e, "train_acc": float(arrays["correct"].mean())}
        if e in (0, 1, 2, 4, 8, E - 1):
            row.update(csr_train=0.1 + prob * e / E, csr_test=0.2)
        st.append_epoch(run_id, row)


def test_figures_and_detection_table_from_a_hand_built_store(tmp_path):
    db = tmp_path / "runs.db"
    with Store(db) as st:
        fake_run(st, "run0000000000p04", 0.4, 0)
        fake_run(st, "run0000000000p10", 1.0, 1)
        st.begin_run("plain00000000000", {"data": {"dataset": "digits"}})
    paths = write_dynamics_figures(db, tmp_path / "out")
    names = {p.name for p in paths}
    for stem in ("learning-order", "data-map", "forgetting", "aum", "csr"):
        assert {f"dynamics-{stem}.png", f"dynamics-{stem}.pdf"} <= names
    assert all(p.stat().st_size > 1000 for p in paths if p.suffix in (".png", ".pdf"))
    md = (tmp_path / "out" / "dynamics-detection.md").read_text()
    assert "uniform p=0.4" in md and "AUM" in md
    rows = (tmp_path / "out" / "dynamics-detection.csv").read_text().splitlines()
    first = [r for r in rows if "first-learned" in r and "p=0.4" in r][0]
    assert float(first.split(",")[5]) > 0.9  # late learners are the changed ones


def test_report_section_for_rethink_report(tmp_path):
    import pandas as pd

    from rethink.dynamics.report import report_section
    from rethink.report._html import write_html

    db = tmp_path / "runs.db"
    with Store(db) as st:
        fake_run(st, "run0000000000p04", 0.4, 0)
        fake_run(st, "run0000000000p10", 1.0, 1)
    only = pd.DataFrame({"run_id": ["run0000000000p04"]})
    files, section = report_section(db, tmp_path / "out", only)
    assert section["sweep"] == "memorization dynamics" and section["figures"]
    assert list(section["tables"][0].frame["run"].unique()) == ["mlp-1x64 uniform p=0.4 on digits"]
    page = write_html(tmp_path / "out" / "report.html", "r", [section]).read_text()
    assert "Detecting changed labels" in page and "data:image/png;base64" in page
    assert report_section(db, tmp_path / "none", pd.DataFrame({"run_id": ["nope"]})) == ([], None)


def test_a_store_without_records_gives_no_figures(tmp_path):
    db = tmp_path / "runs.db"
    with Store(db) as st:
        st.begin_run("plain00000000000", {"data": {"dataset": "digits"}})
    assert write_dynamics_figures(db, tmp_path / "out") == []


@pytest.mark.slow  # a 3-run sweep: ~15 s idle, a minute on a loaded 2-core machine
@pytest.mark.usefixtures("one_thread")
def test_memorization_smoke_end_to_end(tmp_path, capsys):
    db = tmp_path / "runs.db"
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "memorization", "--scale", "smoke", "--store", str(db)])
    assert exc.value.code in (0, None)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["dynamics", "scores", str(db), "--json"])
    runs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["runs"]
    assert len(runs) == 3 and all(r["summary"]["epochs"] == 3 for r in runs)  # epochs 0-2
    rid = runs[0]["run_id"]
    out = tmp_path / "rec.npz"
    with pytest.raises(SystemExit):
        main(["dynamics", "export", str(db), rid, "--out", str(out)])
    with Store(db, readonly=True) as st, np.load(out) as z:
        rec = R.load(st.db, rid)
        assert z["correct"].shape == (3, 300)
        for k in ("correct", "margin", "loss", "pred", "labels", "changed"):
            np.testing.assert_array_equal(z[k], rec[k])
        # the records agree with the epoch rows the engine wrote
        accs = [e["train_acc"] for e in st.epochs(rid)]
        np.testing.assert_allclose(z["correct"].mean(axis=1), accs, atol=1e-6)
    assert write_dynamics_figures(db, tmp_path / "fig")
