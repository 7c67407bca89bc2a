"""The memorization preset: expands at every scale with records on, and its cpu scale holds
the issue's grid (uniform p = 0.2 / 0.4 / 1.0, human worst, its transition matrix; MLP and
convnet; CIFAR-10 (JPEG) subsets)."""

from __future__ import annotations

import pytest

from rethink.sweep import load_sweep, preset_path

SCALES = ["smoke", "cpu", "paper"]


@pytest.mark.parametrize("scale", SCALES)
def test_memorization_expands_and_records_examples(scale):
    text = preset_path("memorization").read_text()
    header = text.split("\nname =")[0]
    assert "rethink reproduce memorization --scale cpu" in header and "Expected" in header
    plan = load_sweep(preset_path("memorization"), scale=scale)
    assert plan.name == f"memorization-{scale}" and len(plan) >= 3
    assert "estimate" in plan.meta["runtime"] and plan.meta["expect"]
    assert all(r.spec.train.record_examples for r in plan.runs)


def test_memorization_cpu_and_paper_grids():
    want = {
        ("none", 0.0, None),
        ("partial-labels", 0.2, None),
        ("partial-labels", 0.4, None),
        ("partial-labels", 1.0, None),
        ("cifar10n-worst", 0.0, None),
        ("noise-matrix", 0.0, "cifar10n-worst"),
    }
    for scale, dataset in (("cpu", "cifar10-jpeg"), ("paper", "cifar10")):
        runs = load_sweep(preset_path("memorization"), scale=scale).runs
        got = {
            (
                r.spec.model.name,
                r.spec.corruption.kind,
                r.spec.corruption.prob,
                r.spec.corruption.matrix,
            )
            for r in runs
        }
        assert got == {(m, *w) for m in ("mlp-1x512", "alexnet-small") for w in want}
        for r in runs:
            assert (r.spec.data.dataset, r.spec.data.preprocess) == (dataset, "paper")
            assert r.spec.train.batch_size == 128
        if scale == "cpu":  # MLPs on 5,000 images; alexnet-small on 2,000, test split spaced
            for r in runs:
                mlp = r.spec.model.name == "mlp-1x512"
                assert r.spec.data.train_size == (5000 if mlp else 2000)
                assert r.spec.train.test_eval == ("every-epoch" if mlp else "spaced")
        else:
            assert all(r.spec.train.schedule == "paper" and r.spec.train.lr == 0.01 for r in runs)
    smoke = load_sweep(preset_path("memorization"), scale="smoke").runs
    assert all(r.spec.train.max_epochs <= 2 and r.spec.data.dataset == "digits" for r in smoke)
