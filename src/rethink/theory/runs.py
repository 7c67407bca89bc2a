"""The theory commands as Python functions: build, verify and report, one dict each.

    expressivity_report(dataset="fashion-mnist", corruption="random-labels")
    expressivity_report(n=100_000, d=10)
    kernel_report("mnist-5k", gamma=0.02)

The dicts hold what `rethink theory ... --json` prints.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from rethink.errors import RethinkError
from rethink.theory._data import load_flat
from rethink.theory.expressivity import fit_expressivity, memory_needed, one_hot
from rethink.theory.kernel import available_gib, fit_kernel
from rethink.theory.kernels import mem_available_bytes, peak_rss_bytes
from rethink.theory.network import evaluate

# Most (points x hidden units) the dense module forward may cost in a report; 60,000 training
# plus 10,000 test images against 60,000 units is 4.2e9 (about a minute on two cores).
_MODULE_EVAL_BUDGET = 5e9
_SAMPLE_EVAL_BUDGET = 1e9  # beyond it, the module checks a sample of training points


def expressivity_report(
    *,
    dataset: str | None = None,
    n: int | None = None,
    d: int | None = None,
    classes: int = 10,
    n_test: int = 1000,
    train_size: int | None = None,
    corruption: str = "none",
    corrupt_prob: float = 0.0,
    seed: int = 0,
    theta: float = 0.25,
    data_dir: str | None = None,
) -> dict:
    """Fit Theorem 1's network to a dataset (or to n random N(0, I_d) points) and verify it.

    Random points get uniform random labels over `classes` (0: real N(0, 1) targets) and
    `n_test` fresh test points with targets drawn the same way. The training outputs are
    recomputed by the torch module (float64) on every training point where that costs under
    5e9 unit-evaluations, else on a seeded
    sample of 1e9 / n points; all points go through the O(log n) form.
    """
    if (dataset is None) == (n is None or d is None):
        raise RethinkError("give either --dataset NAME or both --n and --d.")
    rng = np.random.default_rng(seed)
    if dataset is not None:
        data = load_flat(dataset, train_size=train_size, corruption=corruption,
                         corrupt_prob=corrupt_prob, seed=seed, data_dir=data_dir)  # fmt: skip
        x, xt = data.x_train.numpy(), data.x_test.numpy()
        labels, labels_t, k = data.y_train.numpy(), data.y_test.numpy(), data.num_classes
        # The points are already in memory; what the construction adds must fit too.
        extra = memory_needed(x.shape[0], 0, k) - memory_needed(0, 0, k)
        _check_memory(x.shape[0], 0, k, 0, data.label, extra)
        source = {"dataset": dataset, "corruption": corruption, "label": data.label}
    else:
        if n < 1 or d < 1 or classes < 0 or n_test < 0:
            raise RethinkError("--n and --d must be positive; --classes and --n-test >= 0.")
        _check_memory(n, d, classes, n_test, f"{n:,} random points in {d:,} dimensions")
        x, xt = rng.standard_normal((n, d)), rng.standard_normal((n_test, d))
        labels = rng.integers(0, classes, n) if classes else None
        labels_t = rng.integers(0, classes, n_test) if classes else None
        k = classes
        source = {"dataset": None, "points": "N(0, I_d)", "targets": "random"}
    y = one_hot(labels, k) if labels is not None else rng.standard_normal(x.shape[0])
    y_t = one_hot(labels_t, k) if labels_t is not None else rng.standard_normal(xt.shape[0])
    fit = fit_expressivity(x, y, seed=seed, theta=theta)
    y = y.reshape(y.shape[0], -1)
    y_t = y_t.reshape(y_t.shape[0], fit.outputs)  # (m, k), also for m = 0

    start = time.perf_counter()
    model = fit.module()
    full = fit.n * fit.n <= _MODULE_EVAL_BUDGET
    m_check = fit.n if full else max(1, int(_SAMPLE_EVAL_BUDGET / fit.n))
    check = np.sort(rng.choice(fit.n, m_check, replace=False)) if m_check < fit.n else None
    xs = x if check is None else x[check]
    out_mod = evaluate(model, torch.from_numpy(xs)).numpy()
    max_err = float(np.abs(out_mod - (y if check is None else y[check])).max())
    out_train = out_mod if check is None else fit.predict(x)
    use_module_test = xt.shape[0] * fit.n <= _MODULE_EVAL_BUDGET / 2
    if xt.shape[0] == 0:
        out_test = np.zeros((0, fit.outputs))
    elif use_module_test:
        out_test = evaluate(model, torch.from_numpy(xt)).numpy()
    else:
        out_test = fit.predict(xt)
    report = {
        **source,
        "n": fit.n,
        "d": fit.d,
        "outputs": fit.outputs,
        "params": sum(p.numel() for p in model.parameters()),
        "params_per_output": 2 * fit.n + fit.d,
        "max_abs_error": max_err,
        "checked_points": int(xs.shape[0]),
        "max_abs_error_piecewise": float(np.abs(fit.predict(x) - y).max()),
        "min_diagonal": fit.min_diagonal,
        "min_gap": fit.min_gap,
        "max_abs_slope": float(np.abs(fit.slopes).max()),
        "directions_drawn": fit.attempts,
        "dtype": "float64",
        "train_acc": None,
        "test_acc": None,
        "test_rmse": None,
        "test_max_abs_output": float(np.abs(out_test).max()) if out_test.size else None,
        "test_evaluated_by": "module" if use_module_test else "piecewise",
        "seconds": fit.seconds,
        "eval_seconds": time.perf_counter() - start,
    }
    if labels is not None:
        report["train_acc"] = float((out_train.argmax(1) == labels).mean())
        if out_test.size:
            report["test_acc"] = float((out_test.argmax(1) == labels_t).mean())
    elif out_test.size:
        report["test_rmse"] = float(np.sqrt(((out_test - y_t) ** 2).mean()))
    return report


def _check_memory(n, d, k, n_test, what: str, need: int | None = None) -> None:
    """Refuse, before allocating, a construction that cannot fit in the memory available."""
    need = memory_needed(n, d, k, n_test) if need is None else need
    available = mem_available_bytes()
    if available is None:
        try:
            available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return
    if need > available:
        raise RethinkError(
            f"Theorem 1 on {what} needs about {_bytes_text(need)} of memory (float64 points, "
            f"targets, slopes and weights), more than the {_bytes_text(available)} available; "
            "use a smaller --n or --d (or --train-size)."
        )


def _bytes_text(b: int) -> str:
    for unit, size in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if b >= size:
            return f"{b / size:,.1f} {unit}"
    return f"{b:,} bytes"


def kernel_report(
    dataset: str,
    *,
    train_size: int | None = None,
    kernel: str = "rbf",
    gamma: float = 0.02,
    ridge: float = 0.0,
    solver: str = "auto",
    corruption: str = "none",
    corrupt_prob: float = 0.0,
    seed: int = 0,
    tol: float = 1e-6,
    max_iter: int = 1000,
    precond_rank: int = 1000,
    data_dir: str | None = None,
    log=None,
) -> dict:
    """Minimum-norm (or ridge) kernel fit to one-hot labels of a dataset; errors in [0, 1]."""
    start = time.perf_counter()
    data = load_flat(dataset, train_size=train_size, corruption=corruption,
                     corrupt_prob=corrupt_prob, seed=seed, data_dir=data_dir)  # fmt: skip
    y = torch.from_numpy(one_hot(data.y_train, data.num_classes))
    fit = fit_kernel(
        data.x_train, y, kernel=kernel, gamma=gamma, ridge=ridge, solver=solver, tol=tol,
        max_iter=max_iter, precond_rank=precond_rank, seed=seed, log=log,
    )  # fmt: skip
    t_pred = time.perf_counter()
    test_pred = fit.predict(data.x_test)
    return {
        "dataset": dataset,
        "label": data.label,
        "corruption": corruption,
        "n": int(data.x_train.shape[0]),
        "d": int(data.x_train.shape[1]),
        "n_test": int(data.x_test.shape[0]),
        "kernel": kernel,
        "gamma": gamma if kernel == "rbf" else None,
        "ridge": ridge,
        "solver": fit.solver,
        "iterations": fit.iterations,
        "residual": fit.residual,
        "residual_float64": fit.exact_residual,
        "residual_float64_rows": fit.exact_rows,
        "train_error": float((fit.train_pred.argmax(1) != data.y_train).double().mean()),
        "test_error": float((test_pred.argmax(1) != data.y_test).double().mean()),
        "rkhs_norm": fit.rkhs_norm,
        "svd_rank": fit.rank,
        "solve_seconds": fit.seconds,
        "predict_seconds": time.perf_counter() - t_pred,
        "seconds": time.perf_counter() - start,
        "peak_rss_gib": peak_rss_bytes() / 2**30,
        "mem_available_gib": available_gib(),
        "torch_threads": torch.get_num_threads(),
    }
