"""Theorem 1's construction against independent references: a dense triangular solve, the
torch module's forward pass, and the count 2n + d."""

import numpy as np
import pytest
import scipy.linalg as sl
import torch

from rethink.errors import RethinkError
from rethink.theory import (
    TwoLayerReLU,
    evaluate,
    expressivity_report,
    fit_expressivity,
    one_hot,
)


@pytest.mark.parametrize(
    "n,d,k", [(1, 1, 1), (2, 1, 1), (7, 3, 2), (100, 1, 1), (300, 10, 3), (1500, 50, 10)]
)
def test_matches_dense_triangular_solve(n, d, k):
    rng = np.random.default_rng(n * 31 + d)
    z, y = rng.standard_normal((n, d)), rng.standard_normal((n, k))
    fit = fit_expressivity(z, y, seed=1)
    a = np.maximum(fit.x_sorted[:, None] - fit.b[None, :], 0.0)  # built here, not by the fit
    assert np.allclose(np.triu(a, 1), 0.0)  # lower triangular
    assert np.all(np.diag(a) > 0) and np.isclose(np.diag(a).min(), fit.min_diagonal)
    w_ref = sl.solve_triangular(a, y[fit.order], lower=True)
    scale = np.abs(w_ref).max()
    assert np.abs(fit.w - w_ref).max() <= 1e-6 * scale
    assert np.abs(a @ fit.w - y[fit.order]).max() <= 1e-6 * max(1.0, np.abs(y).max())


@pytest.mark.parametrize("n,d", [(1, 5), (50, 2), (400, 30), (1000, 784)])
def test_module_interpolates_and_counts_parameters(n, d):
    rng = np.random.default_rng(d)
    z, y = rng.random((n, d)), rng.standard_normal(n)
    fit = fit_expressivity(z, y)
    model = fit.module()
    assert isinstance(model, TwoLayerReLU) and isinstance(model, torch.nn.Module)
    assert sum(p.numel() for p in model.parameters()) == 2 * n + d == fit.num_params
    out = evaluate(model, torch.from_numpy(z))
    assert out.shape == (n, 1) and out.dtype == torch.float64
    assert (out[:, 0].numpy() - y).__abs__().max() < 1e-6
    assert np.abs(fit.predict(z)[:, 0] - y).max() < 1e-8


def test_network_is_the_theorems_formula():
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((40, 4)), rng.standard_normal(40)
    fit = fit_expressivity(z, y)
    q = rng.standard_normal((25, 4))  # off the training points too
    c = (np.maximum((q @ fit.a)[:, None] - fit.b[None, :], 0.0) * fit.w[:, 0]).sum(1)
    out = fit.module()(torch.from_numpy(q)).detach().numpy()[:, 0]
    assert np.allclose(out, c, rtol=1e-9, atol=1e-9 * np.abs(c).max())
    assert np.allclose(fit.predict(q)[:, 0], c, rtol=1e-9, atol=1e-9 * np.abs(c).max())
    # The first layer is Linear(d, n)-like with every row equal to a and bias -b.
    hidden = fit.module().hidden
    assert hidden.in_features == 4 and hidden.out_features == 40
    assert torch.equal(hidden.bias, torch.from_numpy(-fit.b))


@pytest.mark.parametrize("name", ["digits", "mnist-5k"])
@pytest.mark.parametrize("corruption", ["none", "random-labels"])
def test_real_images_fit_exactly(name, corruption):
    rep = expressivity_report(dataset=name, corruption=corruption, seed=0)
    assert rep["train_acc"] == 1.0
    assert rep["max_abs_error"] < 1e-3  # outputs are one-hot: 0/1
    assert rep["checked_points"] == rep["n"]
    assert rep["params"] == rep["d"] + rep["n"] + 10 * rep["n"]
    assert rep["params_per_output"] == 2 * rep["n"] + rep["d"]
    if corruption == "random-labels":
        assert rep["test_acc"] < 0.2  # nothing to generalize from


def test_multiclass_argmax_predicts_every_label():
    rng = np.random.default_rng(0)
    z, labels = rng.standard_normal((500, 20)), rng.integers(0, 7, 500)
    fit = fit_expressivity(z, one_hot(labels, 7))
    out = evaluate(fit.module(), torch.from_numpy(z))
    assert out.shape == (500, 7)
    assert torch.equal(out.argmax(1), torch.from_numpy(labels))


def test_duplicate_points_are_rejected():
    z = np.random.default_rng(0).standard_normal((30, 4))
    z[17] = z[5]
    with pytest.raises(RethinkError, match="points 5 and 17 are identical"):
        fit_expressivity(z, np.arange(30.0))


def test_tied_projections_redraw_the_direction():
    # Two distinct points whose difference is almost orthogonal to the first direction drawn.
    rng = np.random.default_rng(0)
    a = rng.standard_normal(2)
    a /= np.linalg.norm(a)
    ortho = np.array([-a[1], a[0]])
    z = np.stack([np.zeros(2), ortho, np.ones(2)])
    fit = fit_expressivity(z, np.array([0.0, 1.0, 2.0]), seed=0)
    assert fit.attempts == 2
    assert np.abs(fit.predict(z)[:, 0] - [0.0, 1.0, 2.0]).max() < 1e-9


def test_all_directions_tied_is_an_error():
    z = np.array([[1.0], [1.0 + 2**-52]])  # distinct, but closer than rounding can trust
    with pytest.raises(RethinkError, match="tied"):
        fit_expressivity(z, np.array([0.0, 1.0]), max_attempts=3)


@pytest.mark.parametrize(
    "points,targets,match",
    [
        (np.zeros((0, 3)), np.zeros(0), "non-empty"),
        (np.zeros(5), np.zeros(5), r"\(n, d\)"),
        (np.eye(3), np.zeros(4), "one row per point"),
        (np.array([[np.nan, 1.0]]), np.zeros(1), "NaN"),
    ],
)
def test_bad_inputs_are_one_sentence(points, targets, match):
    with pytest.raises(RethinkError, match=match):
        fit_expressivity(points, targets)


def test_bad_theta_and_labels():
    with pytest.raises(RethinkError, match="theta"):
        fit_expressivity(np.eye(2), np.zeros(2), theta=1.0)
    with pytest.raises(RethinkError, match="labels"):
        one_hot(np.array([0, 3]), 3)


def test_million_points_fit():
    rng = np.random.default_rng(0)
    n = 1_000_000
    z, y = rng.standard_normal((n, 3)), rng.standard_normal(n)
    fit = fit_expressivity(z, y)
    assert fit.num_params == 2 * n + 3
    idx = rng.choice(n, 20_000, replace=False)
    assert np.abs(fit.predict(z[idx])[:, 0] - y[idx]).max() < 1e-3
