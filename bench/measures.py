"""Time rethink.measures on one MLP and one AlexNet checkpoint; spread of the stochastic ones.

    python bench/measures.py [--models mlp,alexnet] [--seeds 3] [--threads 2]
                             [--store /tmp/rethink-bench-measures/runs.db] [--json]

Trains (once; a rerun reuses the store) two runs with rethink.runner.run:
- mlp: MLP 1x512 on MNIST-5k (4,000 training images), true labels, lr 0.05, until fit;
- alexnet: the small AlexNet on CIFAR-10 (JPEG) (1,000 training images, the paper's 28x28
  preprocessing), true labels, lr 0.01, until fit (the margin measures need a fitted
  network: a low percentile of a margin below 0 has no log), the test split on the spaced
  schedule (needs cifar10-jpeg: $RETHINK_DATA).
Then computes every measure of each at the documented sample sizes (1,000 / 500 examples)
with --seed 0, printing the seconds per measure and in all, and recomputes the data- and
noise-dependent measures with seeds 1 .. S-1 (a seed changes the sample and the noise draws),
printing mean, sample sd and sd / |mean| over the S seeds. With --json the last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from rethink import runner
from rethink.measures import _compute as C
from rethink.spec import RunSpec
from rethink.store import Store

RUNS = {
    "mlp": {
        "data": {"dataset": "mnist-5k"},
        "model": {"name": "mlp-1x512"},
        "train": {"lr": 0.05, "until_fit": True, "max_epochs": 100, "checkpoint_every": 50},
    },
    "alexnet": {
        "data": {"dataset": "cifar10-jpeg", "train_size": 1000, "preprocess": "paper"},
        "model": {"name": "alexnet-small"},
        "train": {"lr": 0.01, "until_fit": True, "max_epochs": 100, "test_eval": "spaced"},
    },
}
STOCHASTIC = ("margin", "pacbayes", "pacbayes_mag", "sharpness", "hessian_eig", "hessian_trace",
              "grad_noise")  # fmt: skip


def _said(name: str, seed: int):
    def say(group: str, seconds: float) -> None:  # progress on stderr; the table comes last
        print(f"{name} seed {seed}: {group} in {seconds:.1f} s", file=sys.stderr, flush=True)

    return say


def bench_one(st: Store, name: str, seeds: int) -> dict:
    spec = RunSpec.from_dict(RUNS[name])
    t0 = time.perf_counter()
    result = runner.run(spec, store=st)
    train_s = time.perf_counter() - t0
    run = next(r for r in st.runs() if r["run_id"] == result["run_id"])
    t0 = time.perf_counter()
    first = C.measure_run(st, run, list(C.GROUPS), seed=0, on_group=_said(name, 0))
    total = time.perf_counter() - t0
    print(f"{name}: every measure once in {total:.1f} s", file=sys.stderr, flush=True)
    values = {m: [v] for m, (v, _, _) in first.items()}
    for seed in range(1, seeds):
        again = C.measure_run(st, run, list(STOCHASTIC), seed=seed, on_group=_said(name, seed))
        for m, (v, _, _) in again.items():
            values[m].append(v)
    rows = []
    for m in C.MEASURES:
        vs = values[m]
        mean = statistics.fmean(vs)
        sd = statistics.stdev(vs) if len(vs) > 1 else 0.0
        rows.append(
            {
                "measure": m,
                "seconds": round(first[m][1], 3),
                "examples": first[m][2],
                "mean": mean,
                "sd": sd,
                "rel_sd": sd / abs(mean) if mean else float("nan"),
                "seeds": len(vs),
            }
        )
    return {
        "model": name,
        "run_id": result["run_id"],
        "spec": RUNS[name],
        "train_seconds": round(train_s, 1),
        "train_acc": result.get("train_acc"),
        "test_acc": result.get("test_acc"),
        "measure_seconds": round(total, 1),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp,alexnet")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--store", default="/tmp/rethink-bench-measures/runs.db")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    Path(args.store).parent.mkdir(parents=True, exist_ok=True)
    out = []
    with Store(args.store) as st:
        for name in args.models.split(","):
            res = bench_one(st, name.strip(), args.seeds)
            out.append(res)
            print(
                f"\n{name}: run {res['run_id']}, trained in {res['train_seconds']} s "
                f"(train acc {res['train_acc']:.3f}, test acc {res['test_acc']:.3f}); all "
                f"measures in {res['measure_seconds']} s on {args.threads} threads"
            )
            print("| measure | s | examples | mean | sd | sd / mean |")
            print("|---|---:|---:|---:|---:|---:|")
            for r in res["rows"]:
                print(
                    f"| {r['measure']} | {r['seconds']:.2f} | {r['examples']} | {r['mean']:.4g} "
                    f"| {r['sd']:.2g} | {r['rel_sd']:.1%} |"
                )
            sys.stdout.flush()
    if args.json:
        print(json.dumps({"threads": args.threads, "results": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
