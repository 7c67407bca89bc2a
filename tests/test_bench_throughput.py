"""bench/throughput.py still runs against the engine it measures (it broke once when fit
became a generator): a tiny run, one epoch each, checked for its JSON summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT.parent / "shared" / "baselines" / "naive_loop.py"
BASELINE = Path(os.environ.get("RETHINK_BASELINE", BASELINE))


def test_throughput_bench_runs(tmp_path):
    if not BASELINE.is_file():
        pytest.skip("the shared naive loop is not here")
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    args = [sys.executable, str(ROOT / "bench" / "throughput.py"), "--n", "256", "--epochs", "1"]
    args += ["--reps", "1", "--fit-epochs", "1", "--no-convnets", "--threads", "1", "--json"]
    env = {**os.environ, "RETHINK_BASELINE": str(BASELINE), "RETHINK_CACHE": str(tmp_path)}
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    obj = json.loads(r.stdout.strip().splitlines()[-1])
    loops = {row["loop"]: row for row in obj["mlp"]}
    assert set(loops) == {"naive", "rethink"}
    assert loops["naive"]["epochs"] == loops["rethink"]["epochs"] == 1
    assert all(row["samples_per_s"] > 0 for row in obj["mlp"])
    assert [row["loop"] for row in obj["until_fit"]] == [
        "naive",
        "rethink",
        "rethink (train-set eval only)",
    ]
    assert obj["until_fit_speedup_per_epoch"] > 0
