"""Training speed: rethink's engine against a plain PyTorch loop, in one process tree.

    python bench/throughput.py [--n 10000] [--epochs 3] [--threads 2] [--reps 2]
                               [--fit-epochs 20] [--no-convnets] [--json]

1. peak: a 2048x2048 fp32 matmul in this process (best of 5), the yardstick for GFLOP/s.
2. MLP 784-512-10 on Fashion-MNIST (`--n` training images, batch 128, SGD momentum 0.9, lr
   0.01, x0.95 per epoch (rethink's `paper-epoch` schedule), `--epochs` epochs): samples/s
   of the training steps for the shared baseline naive_loop.py (DataLoader, nn.Sequential;
   a subprocess) and for rethink.train.fit, run alternately `--reps` times (best of each is
   kept). GFLOP/s counts 6 x params FLOPs per sample (forward 2, backward 4); "executed"
   counts what the step really computes (torch's FlopCounterMode: no input gradient for
   the first layer).
3. A whole until-fit run (true labels, at most `--fit-epochs` epochs; under the paper's
   schedule neither loop fits 10,000 images in 20 epochs, so both do the same epochs):
   naive_loop.py --until-fit (trains, then evaluates the training set every epoch) against
   rethink (trains, then evaluates the training AND the 10,000-image test set every epoch)
   and rethink with the training-set evaluation only; wall seconds of the whole run
   including reading the data, per epoch and in total.
4. The paper's convnets: bench/convnets.py (a plain eager NCHW loop vs rethink's model after
   optimize_for_training, interleaved steps, losses must agree), as a subprocess; GFLOP/s
   from torch's FLOP count of one training step's forward and backward.

The baseline is found as ../shared/baselines/naive_loop.py beside the checkout or at
$RETHINK_BASELINE. Numbers are only comparable within one run of this script: other
processes on the machine slow everything; the ratios are taken back to back.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MLP_PARAMS = 784 * 512 + 512 + 512 * 10 + 10  # 407,050


def find_baseline() -> Path:
    env = os.environ.get("RETHINK_BASELINE")
    path = Path(env) if env else ROOT.parent / "shared" / "baselines" / "naive_loop.py"
    if not path.is_file():
        sys.exit(f"error: the baseline {path} does not exist; set RETHINK_BASELINE.")
    return path


def matmul_peak(threads: int) -> float:
    """GFLOP/s of the best of 5 fp32 2048x2048 matmuls on `threads` threads."""
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2048, 2048, generator=g), torch.randn(2048, 2048, generator=g)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * 2048**3 / best / 1e9


def naive(baseline: Path, idx_dir: str, n: int, epochs: int, threads: int, until_fit=False):
    """Run naive_loop.py in a subprocess; its JSON line plus the wall seconds of its main()."""
    args = [str(baseline), "--idx-dir", idx_dir, "--n", str(n), "--epochs", str(epochs)]
    args += ["--threads", str(threads)] + (["--until-fit"] if until_fit else [])
    code = (  # torch is imported before the clock starts, as it is for rethink
        "import runpy, sys, time, numpy, torch, torch.utils.data; sys.argv = "
        + repr(args)
        + "; t = time.perf_counter(); "
        "runpy.run_path(sys.argv[0], run_name='__main__'); "
        "print('WALL', time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    lines = out.strip().splitlines()
    result = json.loads(next(line for line in lines if line.startswith("{")))
    result["wall_s"] = float(lines[-1].split()[1])
    return result


def rethink_run(n: int, epochs: int, threads: int, *, until_fit=False, test=True):
    """rethink's engine on the same work, in this process; wall seconds include the data.
    test=False evaluates the training set only, as naive_loop.py does."""
    from rethink import data, models
    from rethink.spec import TrainSpec
    from rethink.train import fit

    torch.set_num_threads(threads)
    data.clear_cache()  # read the files again, as the naive loop does
    t0 = time.perf_counter()
    ds = data.load("fashion-mnist", train_size=n)
    prep = data.prepare(ds, preprocess="standardize", corruption="none", seed=0)
    if not test:
        prep = dataclasses.replace(prep, x_test=prep.x_test[:0], y_test=prep.y_test[:0])
    model = models.build("mlp-1x512", prep.input_shape, prep.num_classes, seed=0)
    # the naive loop decays x0.95 after every epoch: rethink's `paper-epoch` schedule
    train = TrainSpec(lr=0.01, schedule="paper-epoch", max_epochs=epochs, until_fit=until_fit)
    records = list(fit(model, prep, train, seed=0))  # fit yields one EpochRecord per epoch
    wall = time.perf_counter() - t0
    last = records[-1]
    steps_s = sum(rec.train_seconds for rec in records[1:])
    return {
        "loop": "rethink" + ("" if test else " (train-set eval only)"),
        "epochs": last.epoch,
        "samples_per_s": round(n * last.epoch / steps_s, 1),
        "train_acc": last.train_acc,
        "wall_s": wall,
    }


def train_flops_per_sample(name: str, shape: tuple[int, int, int]) -> float:
    """FLOPs of one training step's forward and backward per sample, counted by torch."""
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from rethink import models

    model = models.build(name, shape, 10, seed=0)
    x, y = torch.randn(128, *shape), torch.randint(0, 10, (128,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / 128


def convnets(threads: int, steps: int) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "convnets.py"),
            "--json",
            "--threads",
            str(threads),
            "--steps",
            str(steps),
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    if out.returncode not in (0, 1):
        return {"error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10000, help="training images (default 10000)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per throughput run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=2, help="alternating repetitions (best kept)")
    p.add_argument("--fit-epochs", type=int, default=20, help="cap of the until-fit runs")
    p.add_argument("--convnet-steps", type=int, default=10)
    p.add_argument("--no-convnets", action="store_true")
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    a = p.parse_args(argv)
    from rethink.data import locate

    baseline = find_baseline()
    idx_dir = str(locate("fashion-mnist")[1])
    peak = matmul_peak(a.threads)
    print(f"matmul peak ({a.threads} threads): {peak:.1f} GFLOP/s", flush=True)

    best: dict[str, dict] = {}
    for _ in range(a.reps):
        for r in (
            naive(baseline, idx_dir, a.n, a.epochs, a.threads),
            rethink_run(a.n, a.epochs, a.threads),
        ):
            if r["loop"] not in best or r["samples_per_s"] > best[r["loop"]]["samples_per_s"]:
                best[r["loop"]] = r
    base = best["naive"]["samples_per_s"]
    mlp_flops = train_flops_per_sample("mlp-1x512", (1, 28, 28))  # ~4 x params: no input grad
    print(f"\nMLP 784-512-10, Fashion-MNIST n={a.n}, batch 128, {a.epochs} epochs, training steps:")
    mlp = []
    for name, r in best.items():
        gflops = r["samples_per_s"] * 6 * MLP_PARAMS / 1e9
        done = r["samples_per_s"] * mlp_flops / 1e9  # the FLOPs actually executed
        row = {**r, "gflops": round(gflops, 1), "of_peak": round(gflops / peak, 3)}
        row["gflops_executed"] = round(done, 1)
        row["vs_naive"] = round(r["samples_per_s"] / base, 3)
        mlp.append(row)
        print(
            f"  {name:28s} {r['samples_per_s']:9.0f} samples/s  {gflops:6.1f} GFLOP/s "
            f"({100 * gflops / peak:4.1f}% of peak; executed {done:5.1f})  "
            f"x{row['vs_naive']:.2f} vs naive"
        )

    fit_rows = [
        naive(baseline, idx_dir, a.n, a.fit_epochs, a.threads, until_fit=True),
        rethink_run(a.n, a.fit_epochs, a.threads, until_fit=True),
        rethink_run(a.n, a.fit_epochs, a.threads, until_fit=True, test=False),
    ]
    print(f"\nuntil-fit run, true labels, at most {a.fit_epochs} epochs (wall incl. data):")
    for r in fit_rows:
        r["per_epoch_s"] = r["wall_s"] / r["epochs"]
        print(
            f"  {r['loop']:28s} {r['epochs']:3d} epochs  {r['wall_s']:7.2f} s  "
            f"{r['per_epoch_s']:.3f} s/epoch  train acc {r['train_acc']:.4f}"
        )
    fit_ratio = fit_rows[0]["per_epoch_s"] / fit_rows[1]["per_epoch_s"]
    same_ratio = fit_rows[0]["per_epoch_s"] / fit_rows[2]["per_epoch_s"]
    print(
        f"  rethink is x{fit_ratio:.2f} faster per epoch while also evaluating the test set, "
        f"x{same_ratio:.2f} with the same evaluations"
    )

    conv = None
    if not a.no_convnets:
        conv = convnets(a.threads, a.convnet_steps)
        print("\nconvnets (bench/convnets.py, median step):")
        for r in conv.get("results", []):
            flops = train_flops_per_sample(r["model"], (3, 28, 28))
            r["train_mflop_per_sample"] = round(flops / 1e6, 1)
            r["rethink_gflops"] = round(r["rethink_samples_per_s"] * flops / 1e9, 1)
            r["naive_gflops"] = round(r["naive_samples_per_s"] * flops / 1e9, 1)
            print(
                f"  {r['model']:16s} naive {r['naive_samples_per_s']:7.1f}/s "
                f"({r['naive_gflops']:5.1f} GFLOP/s)  rethink {r['rethink_samples_per_s']:7.1f}/s "
                f"({r['rethink_gflops']:5.1f} GFLOP/s, {100 * r['rethink_gflops'] / peak:.0f}% "
                f"of peak)  x{r['speedup']:.2f}  losses agree: {r['losses_agree']}"
            )
        if "error" in conv:
            print(f"  convnets failed: {conv['error']}")
    if a.json:
        summary = {
            "bench": "throughput",
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "threads": a.threads,
            "peak_gflops": round(peak, 1),
            "mlp": mlp,
            "until_fit": fit_rows,
            "until_fit_speedup_per_epoch": round(fit_ratio, 3),
            "until_fit_speedup_same_evaluations": round(same_ratio, 3),
            "convnets": conv,
        }
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
