"""The paper's artefacts as presets: every preset expands at every scale, says how to run it,
and its smoke scale runs end to end through `rethink reproduce`."""

from __future__ import annotations

import json

import pytest

from rethink.cli import main
from rethink.sweep import PRESET_DIR, load_sweep, preset_path

PRESETS = ["fig1a", "fig1bc", "table1", "table4", "fig2"]  # the paper's artefacts
EXTENSIONS = ["measures", "memorization"]  # beyond the paper (rethink.measures, .dynamics)
SCALES = ["smoke", "cpu", "paper"]


def test_every_artefact_has_a_preset():
    assert sorted(p.stem for p in PRESET_DIR.glob("*.toml")) == sorted(PRESETS + EXTENSIONS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_expands_at_every_scale_and_documents_itself(name):
    text = preset_path(name).read_text()
    header = text.split("\nname =")[0]
    assert f"rethink reproduce {name} --scale cpu" in header and "Expected" in header
    sizes = {}
    for scale in SCALES:
        plan = load_sweep(preset_path(name), scale=scale)
        assert plan.name == f"{name}-{scale}" and len(plan) >= 2
        assert plan.meta.get("runtime") and plan.meta.get("expect")
        sizes[scale] = plan
    paper = sizes["paper"].runs
    assert all(
        r.spec.data.dataset == "cifar10" and r.spec.data.preprocess == "paper" for r in paper
    )
    assert all(r.spec.train.schedule == "paper" and r.spec.train.batch_size == 128 for r in paper)
    assert all(
        r.spec.train.lr == (0.1 if r.spec.model.name.startswith("inception") else 0.01)
        for r in paper
    )
    assert all(r.spec.train.max_epochs <= 2 for r in sizes["smoke"].runs)


def test_table1_cpu_runs_the_mlp_rows_on_cifar10_with_the_papers_recipe():
    runs = load_sweep(preset_path("table1"), scale="cpu").runs
    rows = {
        (r.spec.model.name, r.spec.train.weight_decay > 0, r.spec.corruption.kind) for r in runs
    }
    assert rows == {
        (m, wd, k)
        for m in ("mlp-1x512", "mlp-3x512")
        for wd, k in ((False, "none"), (True, "none"), (False, "random-labels"))
    }
    for r in runs:
        assert (r.spec.data.dataset, r.spec.data.preprocess) == ("cifar10-jpeg", "paper")
        assert (r.spec.train.schedule, r.spec.train.lr, r.spec.train.batch_size) == (
            "paper",
            0.01,
            128,
        )


def test_unknown_preset_and_scale_are_one_sentence(capsys):
    for args in (
        ["reproduce", "fig9"],
        ["reproduce", "fig1a", "--scale", "huge"],
        ["reproduce", "fig1a", "--scale", "smoke", "--threads", "0", "--out", "/nonexistent/x"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err


def test_reproduce_smoke_writes_the_report(tmp_path, capsys):
    import torch

    out = tmp_path / "r"
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the caller's count, which --threads 1 must not keep
    try:
        with pytest.raises(SystemExit) as exc:
            main(
                ["reproduce", "fig1bc", "--scale", "smoke", "--out", str(out), "--json"]
                + ["--threads", "1"]
            )
        assert torch.get_num_threads() == 2  # the in-process sweep gave it back
    finally:
        torch.set_num_threads(before)
    assert exc.value.code in (0, None)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["finished"] == 3 and summary["failed"] == 0
    from rethink.store import Store

    with Store(out / "runs.db") as st:  # --threads reached every run
        assert {r["provenance"]["threads"] for r in st.runs()} == {1}
    for f in (
        "report.html",
        "fig1bc-smoke-fig1b.png",
        "fig1bc-smoke-fig1c.pdf",
        "fig1bc-smoke-fig1bc.md",
        "fig1bc-smoke-results.csv",
    ):
        assert (out / f).is_file(), f
    with pytest.raises(SystemExit):  # again: every run is skipped, the report rewritten
        main(["reproduce", "fig1bc", "--scale", "smoke", "--out", str(out), "--json"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["skipped"] == 3
