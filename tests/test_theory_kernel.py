"""Kernel interpolation against independent references: scikit-learn's KernelRidge and
rbf_kernel, numpy's least squares, and the dense solve for CG."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import rbf_kernel

from rethink.errors import RethinkError
from rethink.theory import choose_solver, fit_kernel, kernel_matrix, kernel_matvec, one_hot


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = torch.from_numpy(d.data / 16.0)  # pixels in [0, 1], (1797, 64)
    return (
        x[:600],
        torch.from_numpy(d.target[:600]),
        x[600:900],
        torch.from_numpy(d.target[600:900]),
    )


def test_kernel_matrix_matches_sklearn(digits):
    x = digits[0][:300]
    ours = kernel_matrix(x, kernel="rbf", gamma=0.05).numpy()
    assert np.abs(ours - rbf_kernel(x.numpy(), gamma=0.05)).max() < 1e-12
    lin = kernel_matrix(x, digits[2], kernel="linear").numpy()
    assert np.allclose(lin, x.numpy() @ digits[2].numpy().T)
    v = torch.randn(300, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(
        kernel_matvec(x, x, v, kernel="rbf", gamma=0.05), torch.from_numpy(ours) @ v
    )


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_dense_equals_sklearn_kernel_ridge(digits, kernel):
    x, y, xt, _ = digits
    targets = one_hot(y, 10)
    ridge = 1e-8 if kernel == "rbf" else 1e-3
    fit = fit_kernel(
        x, torch.from_numpy(targets), kernel=kernel, gamma=0.02, ridge=ridge, solver="dense"
    )
    ref = KernelRidge(alpha=ridge, kernel=kernel, gamma=0.02).fit(x.numpy(), targets)
    want = ref.predict(xt.numpy())
    got = fit.predict(xt).numpy()
    assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()
    assert (got.argmax(1) == want.argmax(1)).all()


def test_interpolation_has_zero_training_error(digits):
    x, y, xt, yt = digits
    fit = fit_kernel(x, torch.from_numpy(one_hot(y, 10)), gamma=0.02, solver="dense")
    assert fit.solver == "dense" and fit.residual < 1e-9
    assert torch.equal(fit.train_pred.argmax(1), y)
    assert torch.allclose(fit.train_pred, torch.from_numpy(one_hot(y, 10)), atol=1e-8)
    k = kernel_matrix(x, gamma=0.02)
    assert np.isclose(fit.rkhs_norm**2, float((fit.alpha * (k @ fit.alpha)).sum()), rtol=1e-8)
    assert (fit.predict(xt).argmax(1) != yt).double().mean() < 0.1


@pytest.mark.parametrize("ridge", [0.0, 1e-2])
def test_cg_agrees_with_dense(digits, ridge):
    x, y, xt, _ = digits
    targets = torch.from_numpy(one_hot(y, 10))
    dense = fit_kernel(x, targets, gamma=0.02, ridge=ridge, solver="dense")
    cg = fit_kernel(x, targets, gamma=0.02, ridge=ridge, solver="cg", tol=1e-7, precond_rank=100)
    assert cg.solver == "cg" and 0 < cg.iterations < 1000
    # float32 K: the residual floors near float32 rounding times ||K|| ||alpha|| / ||y||.
    assert cg.residual < 5e-3 and cg.exact_residual < 5e-3 and cg.exact_rows == 600
    pd, pc = dense.predict(xt), cg.predict(xt)
    assert (pd - pc).abs().max() < 5e-3  # outputs are ~1: float32 K costs ~1e-3
    assert torch.equal(pd.argmax(1), pc.argmax(1))
    assert abs(cg.rkhs_norm - dense.rkhs_norm) < 1e-3 * dense.rkhs_norm


def test_linear_kernel_min_norm_least_squares():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 30)), rng.standard_normal((200, 2))  # n > d: K singular
    fit = fit_kernel(torch.from_numpy(x), torch.from_numpy(y), kernel="linear")
    w_ref = np.linalg.lstsq(x, y, rcond=None)[0]
    assert fit.solver == "svd" and fit.rank == 30
    assert np.allclose(fit.predict(torch.from_numpy(x)).numpy(), x @ w_ref, atol=1e-10)
    assert fit.residual > 0.5  # random targets: no exact fit exists, reported as is
    with pytest.raises(RethinkError, match="rank at most d = 30"):
        fit_kernel(torch.from_numpy(x), torch.from_numpy(y), kernel="linear", solver="cg")
    # n <= d: the linear kernel interpolates, and its norm is ||w|| of the min-norm solution.
    xs, ys = x[:20], y[:20]
    fit = fit_kernel(torch.from_numpy(xs), torch.from_numpy(ys), kernel="linear")
    w_min = np.linalg.pinv(xs) @ ys
    assert fit.residual < 1e-10 and np.isclose(fit.rkhs_norm, np.linalg.norm(w_min))


def test_memory_is_checked_before_solving():
    x, y = torch.rand(50, 4, dtype=torch.float64), torch.rand(50, 1, dtype=torch.float64)
    with pytest.raises(RethinkError, match=r"needs about .* GiB but only 0.0 GiB is available"):
        fit_kernel(x, y, memory_available=1000)
    giga = 2**30
    assert (
        choose_solver(
            4000, 784, 10, kernel="rbf", solver="auto", precond_rank=0, available=24 * giga
        )
        == "dense"
    )
    assert (
        choose_solver(
            60000, 784, 10, kernel="rbf", solver="auto", precond_rank=1000, available=20 * giga
        )
        == "cg"
    )
    with pytest.raises(RethinkError, match="--train-size 5") as err:
        choose_solver(
            60000, 784, 10, kernel="rbf", solver="auto", precond_rank=1000, available=12 * giga
        )
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kernel": "poly"}, "unknown kernel"),
        ({"gamma": 0.0}, "gamma must be positive"),
        ({"ridge": -1.0}, "ridge must be"),
        ({"solver": "lu"}, "unknown solver"),
    ],
)
def test_bad_arguments(kwargs, match):
    x, y = torch.rand(10, 3, dtype=torch.float64), torch.rand(10, dtype=torch.float64)
    with pytest.raises(RethinkError, match=match):
        fit_kernel(x, y, **kwargs)
