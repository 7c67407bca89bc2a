"""`rethink theory ...` end to end: JSON keys, numbers that mean what they say, and bad
arguments as one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest
from _cli import run_cli


def test_expressivity_json_on_random_labels(capsys):
    code, out, _ = run_cli(
        [
            "theory",
            "expressivity",
            "--dataset",
            "digits",
            "--corruption",
            "random-labels",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    rep = json.loads(out.strip().splitlines()[-1])
    for key in (
        "n",
        "d",
        "params",
        "max_abs_error",
        "min_diagonal",
        "train_acc",
        "test_acc",
        "seconds",
    ):
        assert key in rep
    assert rep["n"] == 1437 and rep["d"] == 64
    assert rep["params"] == 64 + 1437 + 10 * 1437
    assert rep["train_acc"] == 1.0 and rep["max_abs_error"] < 1e-3 and rep["min_diagonal"] > 0


def test_expressivity_random_points_real_targets(capsys):
    code, out, _ = run_cli(
        ["theory", "expressivity", "--n", "3000", "--d", "20", "--classes", "0", "--json"], capsys
    )
    rep = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and rep["params"] == 2 * 3000 + 20
    assert rep["max_abs_error"] < 1e-6 and rep["train_acc"] is None and rep["test_rmse"] > 0


def test_expressivity_table_for_people(capsys):
    code, out, _ = run_cli(["theory", "expressivity", "--n", "200", "--d", "3"], capsys)
    assert code == 0 and "2n + d" in out and "train accuracy" in out


def test_kernel_json(capsys):
    code, out, _ = run_cli(["theory", "kernel", "--dataset", "digits", "--json"], capsys)
    rep = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and rep["solver"] == "dense" and rep["n"] == 1437
    assert rep["train_error"] == 0.0 and rep["residual"] < 1e-8 and rep["test_error"] < 0.05
    for key in ("rkhs_norm", "seconds", "peak_rss_gib", "test_error"):
        assert key in rep


@pytest.mark.parametrize(
    "argv,match",
    [
        (["theory", "expressivity"], "either --dataset"),
        (["theory", "expressivity", "--n", "10"], "either --dataset"),
        (["theory", "expressivity", "--n", "10", "--d", "2", "--dataset", "digits"], "either"),
        (["theory", "expressivity", "--n", "0", "--d", "2"], "must be positive"),
        (["theory", "expressivity", "--dataset", "nope"], "unknown dataset"),
        (["theory", "expressivity", "--dataset", "digits", "--corruption", "x"], "corruption"),
        (["theory", "kernel", "--dataset", "digits", "--gamma", "-1"], "gamma must be positive"),
        (["theory", "kernel", "--dataset", "digits", "--ridge", "-1"], "ridge must be"),
        (["theory", "kernel", "--dataset", "digits", "--kernel", "poly"], "unknown kernel"),
        (["theory", "kernel", "--dataset", "digits", "--solver", "lu"], "unknown solver"),
        (["theory", "kernel", "--dataset", "digits", "--train-size", "0"], "train-size"),
        (
            ["theory", "kernel", "--dataset", "digits", "--tol", "0"],
            "--tol must be a finite positive number",
        ),
    ],
)
def test_bad_arguments_are_one_line(argv, match, capsys):
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0]


def test_subprocess_error_has_no_traceback():
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "rethink",
            "theory",
            "kernel",
            "--dataset",
            "digits",
            "--gamma",
            "0",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "error: gamma must be positive for the rbf kernel, got 0.0."


def test_expressivity_too_large_is_refused_before_allocating(capsys):
    """--n 1e10 --d 784 is 57 TiB of points alone: one sentence, no MemoryError traceback."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, _, err = run_cli(["theory", "expressivity", "--n", "10000000000", "--d", "784"], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert "TiB of memory" in err and "available" in err and "--n" in err
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB


def test_memory_needed_counts_the_points_and_the_arrays():
    from rethink.theory import expressivity as E

    base = E.memory_needed(0, 0, 1)
    # points dominate: 1e10 x 784 float64 is 57 TiB before any array of the construction
    assert E.memory_needed(10**10, 784, 10) - base > 57 * 2**40
    assert E.memory_needed(1000, 10, 10) - base == 8 * (1000 * 10 + 1000 * 10 + 14e4 + 1e4)


def test_expressivity_table_names_the_parameter_count_and_has_no_empty_rows(capsys):
    code, out, _ = run_cli(["theory", "expressivity", "--n", "30", "--d", "5", "--classes", "0",
                         "--n-test", "0"], capsys)  # fmt: skip
    assert code == 0
    assert "parameters d + n + kn" in out and "65 = 5 + 30 + 1 x 30" in out
    assert "weights per output 2n + d" in out
    for absent in ("accuracy", "RMSE", "test points", "│ - "):
        assert absent not in out  # nothing measured, nothing shown
    code, out, _ = run_cli(["theory", "expressivity", "--n", "30", "--d", "5"], capsys)
    assert "train accuracy" in out and "RMSE" not in out
