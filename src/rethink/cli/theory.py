"""`rethink theory ...`: Theorem 1's construction and minimum-norm kernel interpolation."""

from __future__ import annotations

import json
import math
import sys

import typer

from rethink.cli import app
from rethink.cli._oneline import OneLineCommand, OneLineGroup

theory_app = typer.Typer(
    cls=OneLineGroup,
    help="Theory made executable: Theorem 1's network (Section 4) and minimum-norm kernel "
    "interpolation (Section 5).",
    no_args_is_help=True,
)
app.add_typer(theory_app, name="theory")

_JSON = typer.Option(False, "--json", help="Print one JSON object as the last line.")
_DATA_DIR = typer.Option(None, "--data-dir", help="Look for dataset files here first.")
_CORRUPTION = typer.Option(
    "none", "--corruption", help="none, random-labels, partial-labels, shuffled-pixels, ..."
)
_PROB = typer.Option(0.0, "--corrupt-prob", help="p of partial-labels.")
_SEED = typer.Option(0, "--seed", help="Seeds the corruption, subset and random draws.")
_TRAIN_SIZE = typer.Option(None, "--train-size", help="Stratified training subset.")


@theory_app.command("expressivity", cls=OneLineCommand)
def expressivity(
    dataset: str = typer.Option(None, "--dataset", help="Fit this dataset's training set."),
    n: int = typer.Option(None, "--n", help="Or fit N random N(0, I) points ..."),
    d: int = typer.Option(None, "--d", help="... in D dimensions."),
    classes: int = typer.Option(10, "--classes", help="Random labels over K classes (0: real)."),
    n_test: int = typer.Option(1000, "--n-test", help="Fresh random test points (with --n)."),
    train_size: int = _TRAIN_SIZE,
    corruption: str = _CORRUPTION,
    corrupt_prob: float = _PROB,
    seed: int = _SEED,
    theta: float = typer.Option(0.25, "--theta", help="Bias position within each gap, (0,1)."),
    data_dir: str = _DATA_DIR,
    as_json: bool = _JSON,
) -> None:
    """Build Theorem 1's two-layer ReLU network (d + n + kn parameters: 2n + d for one output)
    that fits every training point exactly, verify it, and evaluate it on the test set.
    Refused before anything is allocated if it cannot fit in the memory available."""
    from rethink.theory.runs import expressivity_report

    rep = expressivity_report(
        dataset=dataset, n=n, d=d, classes=classes, n_test=n_test, train_size=train_size,
        corruption=corruption, corrupt_prob=corrupt_prob, seed=seed, theta=theta,
        data_dir=data_dir,
    )  # fmt: skip
    if as_json:
        print(json.dumps(rep))
        return
    what = rep["label"] if rep["dataset"] else f"{rep['n']:,} random points"
    n, d, k = rep["n"], rep["d"], rep["outputs"]
    rows = [
        ("points n x dimensions d", f"{n:,} x {d:,}"),
        ("parameters d + n + kn", f"{rep['params']:,} = {d:,} + {n:,} + {k} x {n:,}"),
        ("weights per output 2n + d", f"{rep['params_per_output']:,}"),
        ("max |output - target| (module, float64)",
         f"{rep['max_abs_error']:.3g} on {rep['checked_points']:,} points"),
        ("smallest diagonal of A (eigenvalue bound)", f"{rep['min_diagonal']:.3g}"),
        ("largest slope", f"{rep['max_abs_slope']:.3g}"),
        ("train accuracy", _pct(rep["train_acc"])),
        ("test accuracy", _pct(rep["test_acc"])),
        ("test RMSE", None if rep["test_rmse"] is None else f"{rep['test_rmse']:.3g}"),
        ("largest |output| on test points",
         None if rep["test_max_abs_output"] is None else f"{rep['test_max_abs_output']:.3g}"),
        ("fit / evaluation seconds", f"{rep['seconds']:.2f} / {rep['eval_seconds']:.1f}"),
    ]  # fmt: skip
    title = f"Theorem 1 on {what} ({rep.get('corruption', 'random targets')})"
    _table(title, rows)


@theory_app.command("kernel", cls=OneLineCommand)
def kernel(
    dataset: str = typer.Option(None, "--dataset", help="Dataset name (rethink data list)."),
    train_size: int = _TRAIN_SIZE,
    kernel_name: str = typer.Option("rbf", "--kernel", help="rbf or linear."),
    gamma: float = typer.Option(0.02, "--gamma", help="rbf width: exp(-gamma ||x - x'||^2)."),
    ridge: float = typer.Option(0.0, "--ridge", help="lambda in (K + lambda I); 0 interpolates."),
    solver: str = typer.Option("auto", "--solver", help="auto, dense or cg."),
    tol: float = typer.Option(1e-6, "--tol", help="CG: relative residual to stop at."),
    max_iter: int = typer.Option(1000, "--max-iter", help="CG: most iterations."),
    precond_rank: int = typer.Option(1000, "--precond-rank", help="CG: Nystrom landmarks."),
    corruption: str = _CORRUPTION,
    corrupt_prob: float = _PROB,
    seed: int = _SEED,
    data_dir: str = _DATA_DIR,
    as_json: bool = _JSON,
) -> None:
    """Minimum-norm kernel interpolation: solve K alpha = y (one-hot labels, pixels in
    [0, 1]) and report train/test error, RKHS norm, residual, time and memory."""
    from rethink.errors import RethinkError
    from rethink.theory.runs import kernel_report

    if dataset is None:
        raise RethinkError("theory kernel needs --dataset NAME (see `rethink data list`).")
    if not (math.isfinite(tol) and tol > 0) or max_iter < 1 or precond_rank < 0:
        raise RethinkError(
            "--tol must be a finite positive number, --max-iter >= 1 and --precond-rank >= 0."
        )
    rep = kernel_report(
        dataset, train_size=train_size, kernel=kernel_name, gamma=gamma, ridge=ridge,
        solver=solver, corruption=corruption, corrupt_prob=corrupt_prob, seed=seed, tol=tol,
        max_iter=max_iter, precond_rank=precond_rank, data_dir=data_dir, log=_stderr,
    )  # fmt: skip
    if as_json:
        print(json.dumps(rep))
        return
    width = f", gamma {rep['gamma']}" if rep["gamma"] is not None else ""
    _table(
        f"{rep['kernel']} kernel{width}, ridge {rep['ridge']} on {rep['label']} "
        f"({rep['corruption']})",
        [
            ("training / test points", f"{rep['n']:,} / {rep['n_test']:,}"),
            ("solver", f"{rep['solver']} ({rep['iterations']} iterations)"),
            ("relative residual", f"{rep['residual']:.3g}"),
            ("train error", _pct(rep["train_error"])),
            ("test error", _pct(rep["test_error"])),
            ("RKHS norm sqrt(alpha^T K alpha)", f"{rep['rkhs_norm']:.4g}"),
            ("seconds (solve / total)", f"{rep['solve_seconds']:.1f} / {rep['seconds']:.1f}"),
            ("peak RSS", f"{rep['peak_rss_gib']:.2f} GiB"),
        ],
    )  # fmt: skip


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _pct(v: float | None) -> str | None:
    return None if v is None else f"{100 * v:.2f}%"


def _table(title: str, rows: list[tuple[str, str | None]]) -> None:
    """A two-column table; rows whose value is None (not measured here) are left out."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        if v is not None:
            table.add_row(k, v)
    Console().print(table)
