"""prepare(): preprocessing as in the paper (checked against an independent numpy reference),
the corruption order, recorded metadata, errors, and `rethink data export`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_data_readers import isolated  # noqa: F401  (isolated cache and search path)

import rethink.data as D
from rethink import corruptions
from rethink.cli import main
from rethink.data.dataset import Dataset
from rethink.data.prepare import corruption_generator
from rethink.data.preprocess import preprocess, to_unit
from rethink.errors import RethinkError


def toy(n=40, m=10, c=3, h=32, w=32, k=10, seed=0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n + m, c, h, w), generator=g, dtype=torch.uint8)
    x[0] = 7  # a constant image: whitening must use the 1/sqrt(N) floor
    y = torch.arange(n + m) % k
    return Dataset("toy", x[:n], y[:n], x[n:], y[n:], k, tuple(map(str, range(k))), {}, "Toy")


def paper_reference(x_uint8: np.ndarray) -> np.ndarray:
    """Appendix A of Zhang et al., written independently in numpy (float64): /255, centre
    crop 32 -> 28, then (x - mean) / max(std, 1/sqrt(N)) per image, N = 28*28*C."""
    x = x_uint8.astype(np.float64) / 255.0
    if min(x.shape[-2:]) > 28:
        off = (x.shape[-1] - 28) // 2
        x = x[..., off : off + 28, off : off + 28]
    out = np.empty_like(x)
    for i, img in enumerate(x):
        adjusted = max(img.std(), 1.0 / np.sqrt(img.size))
        out[i] = (img - img.mean()) / adjusted
    return out


def test_paper_preprocessing_matches_the_reference():
    ds = toy()
    p = D.prepare(ds, preprocess="paper")
    assert p.input_shape == (3, 28, 28) and p.x_train.dtype == torch.float32
    np.testing.assert_allclose(p.x_train.numpy(), paper_reference(ds.x_train.numpy()), atol=2e-5)
    np.testing.assert_allclose(p.x_test.numpy(), paper_reference(ds.x_test.numpy()), atol=2e-5)
    assert p.x_train[0].abs().max() < 1e-6  # constant image -> zeros (floor, no division by 0)
    assert p.meta["preprocess"]["crop"] == [28, 28]


@pytest.mark.parametrize("h,w", [(8, 8), (28, 28), (1, 40), (28, 40)])
def test_paper_crop_only_when_both_sides_exceed_28(h, w):
    ds = toy(c=1, h=h, w=w)
    p = D.prepare(ds, preprocess="paper")
    assert p.input_shape == (1, h, w) and p.meta["preprocess"]["crop"] is None
    np.testing.assert_allclose(p.x_test.numpy(), paper_reference(ds.x_test.numpy()), atol=2e-5)


def test_standardize_uses_training_statistics_per_channel():
    ds = toy()
    p = D.prepare(ds)  # the default
    assert p.meta["preprocess"]["name"] == "standardize"
    per_channel = p.x_train.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_channel.std(1, unbiased=False), torch.ones(3), atol=1e-5)
    xtr = ds.x_train.double().numpy() / 255
    mean, std = xtr.mean(axis=(0, 2, 3)), xtr.std(axis=(0, 2, 3))
    ref = (ds.x_test.double().numpy() / 255 - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(p.x_test.numpy(), ref, atol=1e-5)


def test_unit_is_just_divided_by_255():
    ds = toy()
    p = D.prepare(ds, preprocess="unit")
    assert torch.equal(p.x_train, ds.x_train.float() / 255)


def test_corruption_happens_before_preprocessing_on_unit_pixels():
    ds = toy(n=400, c=1)
    p = D.prepare(ds, preprocess="unit", corruption="random-pixels", seed=3)
    got = p.x_train.flatten(1).sort(1).values
    assert torch.equal(got, (ds.x_train.float() / 255).flatten(1).sort(1).values)
    g = D.prepare(ds, preprocess="unit", corruption="gaussian", seed=3)
    data = ds.x_train.double() / 255
    assert abs(float(g.x_train.double().mean() - data.mean())) < 0.01
    assert abs(float(g.x_train.double().std() / data.std()) - 1) < 0.01
    assert torch.equal(g.x_test, ds.x_test.float() / 255)  # test images untouched by default


def test_labels_changed_mask_fraction_and_true_test_labels():
    ds = D.load("mnist-5k")
    p = D.prepare(ds, corruption="partial-labels", corrupt_prob=0.5, seed=1)
    assert torch.equal(p.changed, p.y_train != ds.y_train)
    assert p.realized_fraction == pytest.approx(float(p.changed.float().mean()))
    assert abs(p.realized_fraction - 0.45) < 5 * (0.45 * 0.55 / 4000) ** 0.5
    assert torch.equal(p.y_test, ds.y_test) and torch.equal(p.y_train_clean, ds.y_train)
    assert torch.equal(p.x_train, D.prepare(ds, seed=1).x_train)  # labels only
    q = D.prepare(ds, corruption="random-labels", seed=1, corrupt_test=True)
    assert (q.y_test != ds.y_test).float().mean() > 0.8 and q.meta["corrupt_test"] is True


def test_same_seed_same_tensors_and_a_derived_generator():
    ds = D.load("mnist-5k")
    a = D.prepare(ds, corruption="random-labels", seed=7)
    b = D.prepare(ds, corruption="random-labels", seed=7)
    c = D.prepare(ds, corruption="random-labels", seed=8)
    assert torch.equal(a.y_train, b.y_train) and not torch.equal(a.y_train, c.y_train)
    # not the stream of torch.manual_seed(7) itself, which training uses for other things
    naive, _ = corruptions.random_labels(ds.y_train, 10, torch.Generator().manual_seed(7))
    assert not torch.equal(a.y_train, naive)
    again, _ = corruptions.random_labels(ds.y_train, 10, corruption_generator(7))
    assert torch.equal(a.y_train, again)


def test_meta_is_json_and_complete():
    p = D.prepare(D.load("digits"), preprocess="paper", corruption="shuffled-pixels", seed=2)
    meta = json.loads(json.dumps(p.meta))
    for key in ("dataset", "label", "preprocess", "corruption", "corrupt_prob", "seed",
                "corrupt_test", "realized_fraction", "n_changed", "provenance"):  # fmt: skip
        assert key in meta
    assert meta["corruption"] == "shuffled-pixels" and meta["test_changed_fraction"] > 0.9


@pytest.mark.parametrize(
    "kwargs,words",
    [({"preprocess": "zca"}, ["standardize", "paper", "unit"]),
     ({"corruption": "noise"}, list(corruptions.KINDS)),
     ({"corruption": "partial-labels", "corrupt_prob": 1.2}, ["[0, 1]"]),
     ({"corruption": "partial-labels", "corrupt_prob": -0.5}, ["[0, 1]"])],
)  # fmt: skip
def test_bad_names_and_probabilities_are_one_sentence(kwargs, words):
    with pytest.raises(RethinkError) as err:
        D.prepare(toy(), **kwargs)
    msg = str(err.value)
    assert "\n" not in msg and msg.endswith(".") and all(w in msg for w in words)


@pytest.mark.parametrize("kind", ["unit", "standardize", "paper"])
def test_preprocessing_never_changes_its_input(kind):
    """Issue 8: float inputs come back untouched (to_unit used to divide a float32 in place)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 32, 32, generator=g)
    xte = torch.rand(4, 3, 32, 32, generator=g)
    keep, keep_te = x.clone(), xte.clone()
    unit = to_unit(x)
    assert torch.equal(x, keep) and unit.data_ptr() != x.data_ptr()
    assert torch.equal(unit, keep / 255)
    preprocess(x, xte, kind)
    assert torch.equal(x, keep) and torch.equal(xte, keep_te)


@pytest.mark.parametrize(
    "corruption,extra",
    [("none", {}), ("partial-labels", {"corrupt_prob": 0.5}), ("random-labels", {}),
     ("shuffled-pixels", {}), ("random-pixels", {}), ("gaussian", {}),
     ("noise-matrix", {"matrix": np.full((10, 10), 0.1)})],
)  # fmt: skip
def test_prepare_never_changes_the_dataset(corruption, extra):
    ds = toy()
    # float images are the risky case: a float32 tensor passes through .to(float32) as itself
    ds = Dataset(ds.name, ds.x_train.float(), ds.y_train, ds.x_test.float(), ds.y_test,
                 ds.num_classes, ds.class_names, {}, "Toy")  # fmt: skip
    before = [t.clone() for t in (ds.x_train, ds.y_train, ds.x_test, ds.y_test)]
    for preprocess_name in ("unit", "standardize", "paper"):
        p = D.prepare(ds, preprocess=preprocess_name, corruption=corruption, corrupt_test=True,
                      seed=1, **extra) if corruption != "shuffled-pixels" else D.prepare(
                      ds, preprocess=preprocess_name, corruption=corruption, seed=1)  # fmt: skip
        # what prepare returns is the run's own: changing it in place (as an engine may) must
        # not reach the dataset, which load() caches for the rest of the process
        p.x_train.add_(1.0)
        p.y_train.add_(1)
        p.x_test.add_(1.0)
        p.y_test.add_(1)
        for t, orig in zip((ds.x_train, ds.y_train, ds.x_test, ds.y_test), before, strict=True):
            assert torch.equal(t, orig), (corruption, preprocess_name)


def run(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def test_export_writes_a_self_contained_npz(tmp_path, capsys):
    out = tmp_path / "sub" / "rl.npz"
    code = run("data", "export", "mnist-5k", "--corruption", "partial-labels",
               "--corrupt-prob", "0.3", "--seed", "4", "--train-size", "500",
               "--preprocess", "unit", "--out", str(out), "--json")  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with np.load(out) as f:
        assert f["x_train"].shape == (500, 1, 28, 28) and f["x_train"].dtype == np.float32
        assert f["y_train"].dtype == np.int64 and f["changed"].dtype == bool
        assert np.array_equal(f["changed"], f["y_train"] != f["y_train_true"])
        assert f["x_test"].shape == (1000, 1, 28, 28)
        meta = json.loads(str(f["meta"]))
    assert meta["corrupt_prob"] == 0.3 and meta["train_size"] == 500
    assert summary["realized_fraction"] == pytest.approx(f_changed_mean(out))
    ds = D.load("mnist-5k", train_size=500)
    p = D.prepare(ds, preprocess="unit", corruption="partial-labels", corrupt_prob=0.3, seed=4)
    with np.load(out) as f:
        assert np.array_equal(f["y_train"], p.y_train.numpy())  # same as the Python API
    assert [q.name for q in out.parent.iterdir()] == ["rl.npz"]  # no temporary left


def f_changed_mean(path) -> float:
    with np.load(path) as f:
        return float(f["changed"].mean())


@pytest.mark.parametrize(
    "args,word",
    [(["nope", "--out", "x.npz"], "unknown dataset"),
     (["digits", "--out", "x.txt"], ".npz"),
     (["digits", "--corruption", "random-pixels", "--corrupt-prob", "0.5", "--out", "x.npz"],
      "probability")],
)  # fmt: skip
def test_export_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, args, word):
    monkeypatch.chdir(tmp_path)
    assert run("data", "export", *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and word in err and "\n" not in err
    assert list(tmp_path.iterdir()) == [tmp_path / "cache"] or not list(tmp_path.iterdir())
