"""The cost-aware engine: the spaced test schedule changes which epochs carry test numbers and
nothing else (fit epoch, steps, final numbers, every recorded number equal to the full-pass
engine's); no host synchronization inside a training epoch; precision checks."""

from __future__ import annotations

import pytest
import torch

from rethink import runner, train
from rethink.errors import RethinkError
from rethink.spec import RunSpec
from rethink.train import evaluates_test, fit

pytestmark = pytest.mark.usefixtures("one_thread")

_TIMES = ("seconds", "train_seconds", "eval_seconds")


def _spec(**kw) -> RunSpec:
    base = {"dataset": "digits", "train_size": 256, "model.name": "mlp-1x64", "lr": 0.1}
    return RunSpec.from_dict({**base, **kw})


class _Rows(list):
    def __call__(self, rec):
        self.append({k: v for k, v in rec.metrics().items() if k not in _TIMES})


def _both(modes=("spaced", "every-epoch"), **kw):
    out = {}
    for mode in modes:
        rows = _Rows()
        r = runner.execute(_spec(**kw, test_eval=mode), device="cpu", on_epoch=rows)
        out[mode] = (r, rows)
    return out


def test_default_is_every_epoch():
    assert RunSpec().train.test_eval == "every-epoch" and RunSpec().train.precision == "fp32"


def test_test_schedule():
    evaluated = [e for e in range(0, 121) if evaluates_test(e)]
    assert evaluated[:11] == list(range(11))
    assert evaluated[11:] == [15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90, 100, 110, 120]


def test_spaced_equals_full_pass_until_fit():
    # random labels on 256 digits: fits after ~20-40 epochs, so the fit epoch is past 10 and
    # usually not on the spaced schedule; it must be evaluated anyway
    runs = _both(labels="random-labels", until_fit=True, max_epochs=300)
    (rs, spaced), (rf, full) = runs["spaced"], runs["every-epoch"]
    assert rs["status"] == rf["status"] == "finished"
    for key in ("epochs", "epochs_to_fit", "steps_to_fit", "steps", "train_acc", "test_acc"):
        assert rs[key] == rf[key], key
    assert rs["train_loss"] == rf["train_loss"] and rs["test_loss"] == rf["test_loss"]
    assert rs["epochs_to_fit"] > 10
    assert len(spaced) == len(full) == rs["epochs"] + 1
    fit_epoch = rs["epochs_to_fit"]
    for a, b in zip(spaced, full, strict=True):
        e = a["epoch"]
        if evaluates_test(e) or e == fit_epoch:
            assert a == b, e  # every number, test split included, is the full-pass one
        else:
            assert a["test_acc"] is None and a["test_loss"] is None
            assert b["test_acc"] is not None
            same = {k: v for k, v in b.items() if k not in ("test_acc", "test_loss")}
            assert {k: v for k, v in a.items() if k not in ("test_acc", "test_loss")} == same
    # best test accuracy: the best over the epochs the spaced engine evaluated
    seen = [b for b in full if evaluates_test(b["epoch"]) or b["epoch"] == fit_epoch]
    best = max(seen, key=lambda b: (b["test_acc"], -b["epoch"]))
    assert rs["best_test_acc"] == best["test_acc"]
    assert rs["best_test_epoch"] == best["epoch"]
    assert rf["best_test_acc"] == max(b["test_acc"] for b in full)


def test_ends_evaluates_the_test_split_at_the_start_and_the_fit_only():
    runs = _both(("ends", "every-epoch"), labels="random-labels", until_fit=True, max_epochs=300)
    (re, ends), (rf, full) = runs["ends"], runs["every-epoch"]
    for key in ("epochs", "epochs_to_fit", "steps_to_fit", "train_acc", "test_acc", "test_loss"):
        assert re[key] == rf[key], key
    fit_epoch = re["epochs_to_fit"]
    assert fit_epoch > 1 and [a["epoch"] for a in ends if a["test_acc"] is not None] == [
        0,
        fit_epoch,
    ]
    for a, b in zip(ends, full, strict=True):
        if a["test_acc"] is not None:
            assert a == b
        else:
            drop = ("test_acc", "test_loss")
            assert {k: v for k, v in a.items() if k not in drop} == {
                k: v for k, v in b.items() if k not in drop
            }
    assert re["best_test_acc"] == max(ends[0]["test_acc"], ends[-1]["test_acc"])


def test_ends_evaluates_the_last_epoch_of_a_run_that_does_not_fit():
    got = []
    spec = _spec(labels="random-labels", max_epochs=4, test_eval="ends")  # no fit in 4 epochs
    r = runner.execute(spec, device="cpu", on_epoch=got.append)
    assert [g.epoch for g in got if g.test_acc is not None] == [0, 4] and r["test_acc"] is not None


def test_spaced_evaluates_the_last_epoch():
    rs = runner.execute(_spec(max_epochs=13, test_eval="spaced"), device="cpu")
    rf = runner.execute(_spec(max_epochs=13, test_eval="every-epoch"), device="cpu")
    assert rs["test_acc"] is not None and rs["test_acc"] == rf["test_acc"]
    assert rs["epochs"] == 13 and not evaluates_test(13)


def test_record_examples_record_every_epoch_and_follow_test_eval():
    got = []
    spec = _spec(max_epochs=12, record_examples=True, test_eval="spaced")
    runner.execute(spec, device="cpu", on_epoch=got.append)
    assert [r.epoch for r in got] == list(range(13))
    assert all(r.examples is not None and len(r.examples["correct"]) == 256 for r in got)
    assert [r.epoch for r in got if r.test_acc is not None] == [
        e for e in range(13) if evaluates_test(e) or e == 12
    ]
    assert got[11].test_acc is None  # off the spaced schedule: the test split is skipped


def test_running_accuracy_is_recorded():
    rows = _Rows()
    runner.execute(_spec(max_epochs=3), device="cpu", on_epoch=rows)
    assert "running_acc" not in rows[0]
    assert all(0.0 <= r["running_acc"] <= 1.0 for r in rows[1:])


def test_no_host_synchronization_inside_an_epoch(monkeypatch):
    """Inside _train_epoch the only reads of a tensor's value are the one `tolist` at the end:
    no .item(), float(), bool(), int(), .cpu(), .numpy() or .tolist() per batch."""
    calls = []
    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__"):
        orig = getattr(torch.Tensor, name)

        def spy(self, *a, _orig=orig, _name=name, **k):
            calls.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    spec = _spec(train_size=512, batch_size=32, augment="crop+flip").normalized()
    job = runner.setup(spec, device="cpu")
    seen = []

    orig_epoch = train._train_epoch

    def counted(*a, **k):
        calls.clear()
        out = orig_epoch(*a, **k)
        seen.append(list(calls))
        return out

    monkeypatch.setattr(train, "_train_epoch", counted)
    records = fit(job.model, job.data, spec.train, seed=0, device="cpu")
    for rec in records:
        if rec.epoch == 2:
            break
    records.close()
    assert len(seen) == 2
    assert all(c == ["tolist"] for c in seen), seen  # 16 batches per epoch, one read


def test_bf16_on_cpu_is_refused():
    spec = _spec(precision="bf16", max_epochs=1)
    with pytest.raises(RethinkError, match="CUDA"):
        runner.execute(spec, device="cpu")


@pytest.mark.parametrize("key,value", [("test_eval", "sometimes"), ("precision", "fp16")])
def test_bad_values_are_one_sentence(key, value):
    with pytest.raises(RethinkError, match=f"unknown {key} '{value}'"):
        _spec(**{key: value}).normalized()
