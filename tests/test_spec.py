import pytest

from rethink.errors import RethinkError
from rethink.spec import RunSpec

BASE = {"data": {"dataset": "mnist-5k"}, "model": {"name": "mlp-1x512"}}


def _base() -> RunSpec:
    return RunSpec.from_dict(BASE)


def test_default_lr_resolves_into_the_hash():
    a = _base()
    b = a.override({"train.lr": 0.01})
    assert a.run_id() == b.run_id()
    c = _base().override({"model": {"name": "inception-small"}})
    assert c.normalized().train.lr == 0.1


def test_random_labels_probability_is_one_and_irrelevant_fields_drop():
    a = _base().override({"corruption": {"kind": "random-labels"}})
    b = _base().override({"corruption": {"kind": "random-labels", "prob": 1.0}})
    assert a.run_id() == b.run_id()
    assert a.normalized().corruption.prob == 1.0
    # the normalized spec round-trips (prob 1.0 written out is what random-labels means)
    assert RunSpec.from_dict(a.normalized().to_dict()).run_id() == a.run_id()
    c = _base().override({"fit_loss": 0.5})  # until_fit is off: fit_loss changes nothing
    assert c.run_id() == _base().run_id()


@pytest.mark.parametrize(
    "changes,words",
    [
        ({"corruption": {"kind": "random-labels", "prob": 0.4}}, "takes no probability"),
        ({"corruption": {"kind": "shuffled-pixels", "prob": 0.5}}, "takes no probability"),
        ({"corruption": {"kind": "partial-labels"}}, "needs corruption.prob"),
        ({"corruption": {"kind": "noise-matrix"}}, "needs corruption.matrix"),
        ({"corruption": {"kind": "gaussian", "matrix": "cifar10n-worst"}}, "takes no matrix"),
        ({"train.lr": "inf"}, "finite"),
        ({"train.lr": "1e400"}, "finite"),
        ({"train.weight_decay": float("inf")}, "finite"),
        ({"train.momentum": float("nan")}, "finite"),
        ({"train.max_epochs": "inf"}, "integer"),
    ],
)
def test_no_silent_defaults_and_no_non_finite_numbers(changes, words):
    with pytest.raises(RethinkError, match=words):
        _base().override(changes).run_id()


def test_a_missing_dataset_or_model_is_an_error_naming_the_choices():
    with pytest.raises(RethinkError, match="no dataset given.*mnist-5k"):
        RunSpec.from_dict({"model.name": "mlp-1x512"}).normalized()
    with pytest.raises(RethinkError, match="no model given.*alexnet-small"):
        RunSpec.from_dict({"dataset": "digits"}).normalized()


def test_spec_imports_neither_torch_nor_the_model_zoo():
    import subprocess
    import sys

    code = (
        "import sys; from rethink.spec import RunSpec; "
        "s = RunSpec.from_dict({'dataset': 'digits', 'model.name': 'inception-small'}); "
        "s.run_id(); assert s.normalized().train.lr == 0.1; "
        "bad = [m for m in ('torch', 'rethink.models', 'rethink.data') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_field_changes_the_hash():
    base = _base()
    changes = {
        "seed": 1,
        "dataset": "digits",
        "train_size": 100,
        "preprocess": "paper",
        "labels": "gaussian",
        "model.name": "mlp-3x512",
        "dropout": 0.5,
        "lr": 0.5,
        "momentum": 0.5,
        "batch_size": 64,
        "schedule": "paper",
        "weight_decay": 1e-4,
        "augment": "crop",
        "max_epochs": 7,
        "until_fit": True,
        "corrupt_test": True,
        "subset_seed": 3,
        "record_examples": True,
        "step_gamma": 0.5,
        "lr_decay_per_epoch": 0.9,
        "checkpoint_every": 2,
    }
    ids = {base.run_id()}
    for k, v in changes.items():
        ids.add(base.override({k: v}).run_id())
    assert len(ids) == len(changes) + 1


def test_dotted_short_and_nested_keys_agree():
    a = RunSpec.from_dict({"train": {"lr": 0.2, "max_epochs": 3}, "seed": 4, **BASE})
    b = RunSpec.from_dict({"train.lr": 0.2, "max-epochs": "3", "seed": 4, **BASE})
    assert a == b


@pytest.mark.parametrize(
    "bad",
    [
        {"train.lr": -1},
        {"lr": 0},
        {"nonsense": 1},
        {"train.nonsense": 1},
        {"corruption.prob": 1.5},
        {"corruption.kind": "upside-down"},
        {"max_epochs": 2.5},
        {"batch_size": "many"},
        {"until_fit": "perhaps"},
        {"schedule": "wild"},
        {"weight_decay": -0.1},
        {"data": 3},
    ],
)
def test_bad_values_are_one_sentence(bad):
    with pytest.raises(RethinkError) as e:
        RunSpec.from_dict(bad).normalized()
    msg = str(e.value)
    assert msg.endswith(".") and "\n" not in msg
