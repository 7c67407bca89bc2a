"""bench/gpu_check.sh --paper: the code path of `reproduce fig1a --scale paper` within a
budget, smoke-tested on CPU (--smoke runs the same path at --scale smoke)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.sh"


@pytest.mark.slow  # ~20 s idle, a few minutes at load 10 (five runs plus a report)
def test_paper_mode_smoke_on_cpu(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "RETHINK_CACHE": str(tmp_path / "cache")}
    args = ["bash", str(SCRIPT), str(tmp_path), "--paper", "--smoke", "--budget", "500"]
    r = subprocess.run(
        [*args, "--out", str(out)], capture_output=True, text=True, env=env, timeout=900
    )
    assert r.returncode == 0, r.stderr[-3000:]
    obj = json.loads(r.stdout.strip().splitlines()[-1])
    assert obj["scale"] == "smoke" and obj["report"] == str(out)
    kinds = ["none", "random-labels", "shuffled-pixels", "random-pixels", "gaussian"]
    assert sorted(x["setting"] for x in obj["rows"]) == sorted(kinds)
    for row in obj["rows"]:
        assert row["status"] == "finished" and row["epochs"] == 2 and row["steps"] > 0
        assert row["samples_per_s"] > 0 and row["test_acc"] is not None
    assert "samples/s" in r.stdout and "settings fit" in r.stdout  # the table
    assert (out / "report.html").is_file()


def test_paper_mode_refuses_bf16_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible")
    env = {**os.environ, "PYTHON": sys.executable}
    args = ["bash", str(SCRIPT), str(tmp_path), "--paper", "--smoke", "--precision", "bf16"]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "bf16 needs a CUDA GPU" in r.stderr
