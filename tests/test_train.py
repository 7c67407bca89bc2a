"""The training engine: fitting random labels, schedules, augmentation, stopping, divergence,
memorization accuracies and bit-exact determinism / resume on CPU."""

from __future__ import annotations

import math

import pytest
import torch

from rethink import runner, train
from rethink.augment import random_crop, random_flip
from rethink.errors import RethinkError
from rethink.schedules import lr_at
from rethink.spec import RunSpec, TrainSpec
from rethink.train import EpochRecord, evaluate, fit

pytestmark = pytest.mark.usefixtures("one_thread")


def _spec(**kw) -> RunSpec:
    base = {"dataset": "digits", "train_size": 512, "model.name": "mlp-1x256", "lr": 0.1}
    return RunSpec.from_dict({**base, **kw})


_TIMES = ("seconds", "train_seconds", "eval_seconds")


def _strip(records):
    return [{k: v for k, v in r.items() if k not in _TIMES} for r in records]


class _Rows(list):
    """on_epoch callback that keeps each EpochRecord's metrics row."""

    def __call__(self, rec):
        self.append(rec.metrics())


def test_small_mlp_fits_512_random_labels():
    records = _Rows()
    spec = _spec(labels="random-labels", until_fit=True, max_epochs=300)
    r = runner.execute(spec, device="cpu", on_epoch=records)
    assert r["status"] == "finished"
    assert r["train_acc"] == 1.0 and r["epochs_to_fit"] == r["epochs"] > 1
    assert r["steps_to_fit"] == r["epochs"] * math.ceil(512 / 128)
    assert records[-2]["train_acc"] < 1.0  # it stopped at the first fitting epoch
    assert [rec["epoch"] for rec in records] == list(range(r["epochs"] + 1))
    assert r["test_acc"] < 0.3  # random labels: nothing to generalize
    assert r["params"] == 64 * 256 + 256 + 256 * 10 + 10


@pytest.mark.parametrize(
    "kind,epoch,expected",
    [
        ("constant", 50, 0.1),
        ("paper-epoch", 1, 0.1),
        ("paper-epoch", 11, 0.1 * 0.95**10),
        ("exponential", 3, 0.1 * 0.5**2),
        ("step", 30, 0.1),
        ("step", 31, 0.01),
        ("step", 61, 0.001),
        ("cosine", 1, 0.1),
        ("cosine", 51, 0.05),
    ],
)
def test_schedules(kind, epoch, expected):
    train = TrainSpec(lr=0.1, schedule=kind, max_epochs=100)
    if kind == "exponential":
        train = TrainSpec(lr=0.1, schedule=kind, lr_decay_per_epoch=0.5)
    assert lr_at(train, epoch) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n", [50_000, 1_000, 2_000])
def test_paper_schedule_decays_per_50000_examples_seen(n):
    train = TrainSpec(lr=0.01, schedule="paper", max_epochs=1000)
    # epoch e starts after (e - 1) * n examples: lr = 0.01 * 0.95 ** (examples / 50,000)
    for epoch in (1, 2, 26, 51):
        seen = (epoch - 1) * n
        assert lr_at(train, epoch, n) == pytest.approx(0.01 * 0.95 ** (seen / 50_000), rel=1e-12)
    if n == 50_000:  # all of CIFAR-10: exactly the paper's x0.95 per epoch
        assert lr_at(train, 11, n) == pytest.approx(0.01 * 0.95**10, rel=1e-12)
    with pytest.raises(RethinkError):
        lr_at(train, 2)  # the paper schedule needs the training-set size


def test_recorded_lr_follows_the_schedule():
    records = _Rows()
    runner.execute(_spec(schedule="paper-epoch", max_epochs=4), device="cpu", on_epoch=records)
    assert [r["lr"] for r in records[1:]] == pytest.approx([0.1 * 0.95**e for e in range(4)])
    records = _Rows()
    runner.execute(_spec(schedule="paper", max_epochs=3), device="cpu", on_epoch=records)
    # 512 examples per epoch: the paper's decay per 50,000 examples seen
    want = [0.1 * 0.95 ** (e * 512 / 50_000) for e in range(3)]
    assert [r["lr"] for r in records[1:]] == pytest.approx(want)


def test_random_crop_is_a_window_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 6 * 5, dtype=torch.float32).reshape(2, 3, 6, 5) + 1
    out = random_crop(x, g, pad=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        hits = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 6, dx : dx + 5])
        ]
        assert hits, "each crop must be one window of its padded image"
    many = random_crop(x.repeat(50, 1, 1, 1), g, pad=2)
    assert len({tuple(m.flatten().tolist()) for m in many[::2]}) > 5  # offsets vary


def test_random_flip_mirrors_about_half():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 1, 4, 4)
    out = random_flip(x, g)
    same = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    mirrored = torch.tensor([torch.equal(o, i.flip(2)) for o, i in zip(out, x, strict=True)])
    assert bool((same | mirrored).all())
    assert 150 < int(mirrored.sum()) < 250


def test_until_fit_loss_threshold_stops_at_first_epoch_below():
    records = _Rows()
    r = runner.execute(
        _spec(until_fit=True, fit_loss=0.5, max_epochs=50), device="cpu", on_epoch=records
    )
    losses = [rec["train_loss"] for rec in records]
    first = next(i for i, v in enumerate(losses) if v < 0.5)
    assert r["epochs_to_fit"] == first == r["epochs"] == len(records) - 1


def test_max_epochs_without_fit_records_never():
    r = runner.execute(_spec(labels="random-labels", max_epochs=2, lr=0.001), device="cpu")
    assert r["epochs"] == 2 and r["epochs_to_fit"] is None and r["steps_to_fit"] is None
    assert 0.0 <= r["best_test_acc"] <= 1.0 and r["best_test_epoch"] in (0, 1, 2)


def test_huge_lr_diverges():
    r = runner.execute(_spec(lr=1e6, max_epochs=20), device="cpu")
    assert r["status"] == "diverged"
    assert 1 <= r["diverged_epoch"] <= 20


def test_partial_labels_split_memorization_from_learning():
    records = _Rows()
    spec = _spec(labels="partial-labels", corrupt_prob=0.5, max_epochs=3)
    r = runner.execute(spec, device="cpu", on_epoch=records)
    job = runner.setup(spec, device="cpu")
    changed = job.data.changed
    n_changed = int(changed.sum())
    assert 0 < n_changed < 512
    for rec in records:
        weighted = rec["changed_acc"] * n_changed + rec["unchanged_acc"] * (512 - n_changed)
        assert weighted / 512 == pytest.approx(rec["train_acc"], abs=1e-6)
    assert "changed_acc" in r and "unchanged_acc" in r


def test_evaluate_matches_an_independent_pass():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    x, y = torch.randn(2500, 3, 2, 2), torch.randint(0, 5, (2500,))
    loss, correct = evaluate(model, x, y, batch_size=1000)
    with torch.no_grad():
        logits = model(x)
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert torch.equal(correct, logits.argmax(1) == y)


def test_same_seed_same_metrics_other_seed_differs():
    spec = _spec(labels="random-labels", max_epochs=3, augment="crop+flip", dropout=0.2)
    runs = []
    for s in (spec, spec, spec.override({"seed": 1})):
        records = _Rows()
        runner.execute(s, device="cpu", on_epoch=records)
        runs.append(_strip(records))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_resume_from_a_checkpoint_is_bit_exact():
    spec = _spec(labels="random-labels", max_epochs=6, checkpoint_every=2, dropout=0.1)
    spec = spec.override({"augment": "crop+flip"})
    full = _Rows()
    runner.execute(spec, device="cpu", on_epoch=full)
    states, first = {}, _Rows()
    r1 = runner.execute(
        spec,
        device="cpu",
        on_epoch=first,
        on_checkpoint=lambda e, s: states.__setitem__(e, s),
        should_stop=lambda: len(first) > 3,  # stop after epoch 3
    )
    assert r1["status"] == "interrupted" and 3 in states
    rest = _Rows()
    r2 = runner.execute(spec, device="cpu", resume=states[3], on_epoch=rest)
    assert r2["status"] == "finished" and r2["epochs"] == 6
    assert _strip(first[:4] + rest) == _strip(full)


def test_fit_is_a_generator_of_epoch_records_and_the_caller_stops_it():
    spec = _spec(labels="random-labels", max_epochs=5).normalized()
    job = runner.setup(spec, device="cpu")
    before = torch.get_rng_state()
    records = []
    for rec in fit(job.model, job.data, spec.train, seed=spec.seed):
        assert isinstance(rec, EpochRecord)
        records.append(rec)
        if rec.epoch == 2:
            state = rec.state()
            break
    assert [r.epoch for r in records] == [0, 1, 2]
    assert records[0].running_loss is None and records[1].running_loss is not None
    assert records[2].step == 2 * 4 and state["epoch"] == 2 and state["step"] == 8
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is untouched
    # resuming from the state gives the records an uninterrupted generator gives
    job2 = runner.setup(spec, device="cpu")
    rest = [r.metrics() for r in fit(job2.model, job2.data, spec.train, seed=0, resume=state)]
    job3 = runner.setup(spec, device="cpu")
    full = [r.metrics() for r in fit(job3.model, job3.data, spec.train, seed=0)]
    assert [r["epoch"] for r in rest] == [3, 4, 5]
    assert _strip([r.metrics() for r in records] + rest) == _strip(full)


def test_an_exploding_finite_loss_is_divergence():
    # lr 1e3 keeps the loss finite (thousands of nats at chance): recorded as diverged
    r = runner.execute(_spec(lr=1e3, max_epochs=30), device="cpu")
    assert r["status"] == "diverged" and r["diverged_epoch"] <= 30
    assert r["train_loss"] is None or not r["train_loss"] < 2.0


def test_divergence_follows_the_training_pass_not_the_eval_mode_loss():
    """BatchNorm's running statistics can lag on a small training set: the eval-mode loss
    explodes while the train-mode loss falls. That is no divergence; a train-mode loss that
    explodes is (measured: inception-small, 500 CIFAR-10 images, shuffled pixels)."""
    from types import SimpleNamespace

    def epochs(pairs):
        s = {"fit_epoch": None, "fit_step": None, "best_test_acc": 0.0, "best_test_epoch": None,
             "init_loss": 2.3, "over": 0}  # fmt: skip
        out = []
        for e, (eval_loss, running) in enumerate(pairs, start=1):
            rec = SimpleNamespace(epoch=e, step=4 * e, fit=False, test_acc=None, diverged=False,
                                  train_loss=eval_loss, running_loss=running)  # fmt: skip
            train._account(s, rec)
            out.append(rec.diverged)
        return out

    lagging_bn = [(2.6, 1.9), (4.4, 1.5), (19.9, 0.9), (34.4, 0.6), (85.4, 0.7), (28.9, 0.7)]
    assert epochs(lagging_bn) == [False] * 6
    exploding = [(2.6, 2.5), (40.0, 30.0), (50.0, 45.0), (60.0, 55.0)]
    assert epochs(exploding) == [False, False, False, True]
    assert epochs([(float("nan"), 0.5)]) == [True]  # a non-finite eval loss still ends it
    assert epochs([(2.0, float("inf"))]) == [True]


def test_a_loss_threshold_met_before_training_means_zero_epochs():
    r = runner.execute(_spec(until_fit=True, fit_loss=100.0), device="cpu")
    assert r["epochs"] == 0 and r["epochs_to_fit"] == 0 and r["steps_to_fit"] == 0


@pytest.mark.slow
def test_defaults_fit_random_labels_on_mnist_sized_data():
    # The calibration behind the defaults (docs/training.md): constant lr 0.01, cap 500.
    spec = RunSpec.from_dict(
        {"dataset": "mnist-5k", "labels": "random-labels", "model.name": "mlp-1x512"}
    ).override({"until_fit": True})
    r = runner.execute(spec, device="cpu")
    assert r["status"] == "finished" and r["train_acc"] == 1.0
    assert r["epochs_to_fit"] < spec.normalized().train.max_epochs
