import pytest

from rethink.errors import RethinkError
from rethink.spec import RunSpec


def test_default_lr_resolves_into_the_hash():
    a = RunSpec.from_dict({"model": {"name": "mlp-1x512"}})
    b = a.override({"train.lr": 0.01})
    assert a.run_id() == b.run_id()
    c = RunSpec.from_dict({"model": {"name": "inception-small"}})
    assert c.normalized().train.lr == 0.1


def test_random_labels_probability_is_one_and_irrelevant_fields_drop():
    a = RunSpec.from_dict({"corruption": {"kind": "random-labels"}})
    b = RunSpec.from_dict({"corruption": {"kind": "random-labels", "prob": 0.3}})
    assert a.run_id() == b.run_id()
    assert a.normalized().corruption.prob == 1.0
    c = RunSpec().override({"fit_loss": 0.5})  # until_fit is off: fit_loss changes nothing
    assert c.run_id() == RunSpec().run_id()


def test_every_field_changes_the_hash():
    base = RunSpec()
    changes = {
        "seed": 1,
        "dataset": "digits",
        "train_size": 100,
        "preprocess": "paper",
        "labels": "partial-labels",
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
    }
    ids = {base.run_id()}
    for k, v in changes.items():
        ids.add(base.override({k: v}).run_id())
    assert len(ids) == len(changes) + 1


def test_dotted_short_and_nested_keys_agree():
    a = RunSpec.from_dict({"train": {"lr": 0.2, "max_epochs": 3}, "seed": 4})
    b = RunSpec.from_dict({"train.lr": 0.2, "max-epochs": "3", "seed": 4})
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
