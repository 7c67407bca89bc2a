"""bench/until_fit.py: rethink's whole until-fit run against the shared naive loop, with the
full-pass engine check, on a small digits run (the CIFAR-10 run is the benchmark itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "until_fit.py"
NAIVE = Path(os.environ.get("RETHINK_NAIVE_LOOP", "/work/shared/baselines/naive_loop.py"))


@pytest.mark.slow  # five processes (export, naive, rethink twice); minutes at load 10
def test_until_fit_bench_on_digits(tmp_path):
    if not NAIVE.is_file():
        pytest.skip("the shared naive loop is not here")
    md = tmp_path / "BENCH.md"
    args = [sys.executable, str(BENCH), "--dataset", "digits", "--train-size", "100"]
    args += ["--max-epochs", "14", "--full-pass", "--json", "--benchmarks-md", str(md)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    obj = json.loads(r.stdout.strip().splitlines()[-1])
    assert obj["ratio"] > 0 and obj["naive"]["wall_s"] > 0
    check = obj["full_pass_check"]
    assert check["differs"] == []  # same fit epoch, final / best test, every shared number
    assert obj["rethink"]["test_acc"] == check["full_pass_test_acc"]
    assert "ratio = naive wall / rethink wall" in r.stdout
    text = md.read_text()
    assert "Whole until-fit run vs the naive loop" in text and "Ratio: **x" in text
