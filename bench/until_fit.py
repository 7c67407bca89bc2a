"""The whole until-fit run: rethink against the shared naive loop, in one process tree.

    python bench/until_fit.py [--dataset cifar10-jpeg] [--train-size 1000] [--threads 1]
                              [--full-pass] [--max-epochs 500] [--benchmarks-md FILE] [--json]

Both fit random labels with alexnet-small at lr 0.01 (SGD, momentum 0.9, batch 128) under
the paper's lr schedule in steps (x0.95 per 50,000 examples seen: rethink's `--schedule
paper`, the naive loop's `--decay-examples 50000`), on the same arrays: this script writes
them with `rethink data export DATASET --train-size N --preprocess paper --corruption
random-labels` and gives the .npz to `naive_loop.py --npz FILE --arch alexnet-small
--until-fit --eval-test` (a DataLoader loop that evaluates the training and the test set
after every epoch). rethink runs the same spec as `rethink run ... --until-fit` into a fresh
store (the training split every epoch, the test split on the spaced schedule:
`train.test_eval = "spaced"`). The two are launched one after the other from this process,
each timed from launch to exit (start-up, data loading and every evaluation included). Their model
initializations differ (rethink's seeded init vs torch.manual_seed(0)), so epochs to fit
agree only within noise; the script prints both.

--full-pass also runs rethink with `train.test_eval = "every-epoch"` (the full-pass engine)
and checks, from the two stores, that the fit epoch, steps, final and best test accuracy and
every number both recorded are equal (exit status 1 if not).

Prints a table, `ratio = naive wall / rethink wall`, and with --json a last line of JSON;
--benchmarks-md appends a section (machine, load, command, date) to that file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAIVE = Path(os.environ.get("RETHINK_NAIVE_LOOP", "/work/shared/baselines/naive_loop.py"))
_TIMES = ("seconds", "train_seconds", "eval_seconds", "run_id")  # not compared


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:  # pragma: no cover - not Linux
        return "unknown"


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"error: {shlex.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return wall, p.stdout.strip().splitlines()[-1]


def _rethink_cmd(a, store: Path, test_eval: str) -> list[str]:
    # = rethink run --dataset D --train-size N --preprocess paper --model alexnet-small
    #   --corruption random-labels --schedule paper --lr 0.01 --until-fit --threads T
    #   --set train.test_eval=E, through rethink.runner.run (bench/evidence_run.py): the CLI's
    #   epoch line cannot print an unevaluated test split yet
    cmd = [sys.executable, str(HERE / "evidence_run.py"), "--dataset", a.dataset]
    cmd += ["--train-size", str(a.train_size), "--max-epochs", str(a.max_epochs)]
    cmd += ["--threads", str(a.threads), "--store", str(store), "--test-eval", test_eval]
    return cmd


def _epochs(store: Path, run_id: str) -> list[dict]:
    from rethink.store import Store

    st = Store(store)
    try:
        return [{k: v for k, v in e.items() if k not in _TIMES} for e in st.epochs(run_id)]
    finally:
        close = getattr(st, "close", None)
        if close is not None:
            close()


def _same_records(spaced: list[dict], full: list[dict]) -> list[str]:
    """What differs between the spaced engine's records and the full-pass engine's, beyond
    the test numbers the spaced engine did not evaluate."""
    bad = []
    if len(spaced) != len(full):
        return [f"{len(spaced)} vs {len(full)} epochs"]
    for a, b in zip(spaced, full, strict=True):
        if a.get("test_acc") is None:
            a = {k: v for k, v in a.items() if k not in ("test_acc", "test_loss")}
            b = {k: v for k, v in b.items() if k not in ("test_acc", "test_loss")}
        if a != b:
            bad.append(f"epoch {a.get('epoch')}")
    return bad


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="cifar10-jpeg")
    p.add_argument("--train-size", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-epochs", type=int, default=500)
    p.add_argument("--full-pass", action="store_true", help="also run the full-pass engine")
    p.add_argument("--benchmarks-md", help="append the result as a section to this file")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if not NAIVE.is_file():
        sys.exit(f"error: the naive loop {NAIVE} does not exist (set RETHINK_NAIVE_LOOP).")
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    load_before, started = _load(), datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="rethink-until-fit-") as tmp:
        npz = Path(tmp) / "data.npz"
        export = [sys.executable, "-m", "rethink", "data", "export", a.dataset]
        export += ["--train-size", str(a.train_size), "--preprocess", "paper"]
        export += ["--corruption", "random-labels", "--out", str(npz)]
        _timed(export, env)
        naive_cmd = [sys.executable, str(NAIVE), "--npz", str(npz), "--arch", "alexnet-small"]
        naive_cmd += ["--until-fit", "--eval-test", "--decay-examples", "50000", "--lr", "0.01"]
        naive_cmd += ["--epochs", str(a.max_epochs), "--threads", str(a.threads)]
        naive_wall, line = _timed(naive_cmd, env)
        naive = json.loads(line)
        store = Path(tmp) / "spaced.db"
        rethink_wall, line = _timed(_rethink_cmd(a, store, "spaced"), env)
        ours = json.loads(line)
        check = None
        if a.full_pass:
            full_store = Path(tmp) / "full.db"
            full_wall, line = _timed(_rethink_cmd(a, full_store, "every-epoch"), env)
            full = json.loads(line)
            spaced_rows = _epochs(store, ours["run_id"])
            full_rows = _epochs(full_store, full["run_id"])
            keys = ("epochs_to_fit", "steps_to_fit", "train_acc", "test_acc", "test_loss")
            differs = [k for k in keys if ours.get(k) != full.get(k)]
            evaluated = [
                r
                for r in full_rows
                if r["epoch"] in {s["epoch"] for s in spaced_rows if s.get("test_acc") is not None}
            ]
            best_over_evaluated = max(r["test_acc"] for r in evaluated)
            if ours.get("best_test_acc") != best_over_evaluated:
                differs.append("best_test_acc")
            differs += _same_records(spaced_rows, full_rows)
            check = {
                "full_pass_wall_s": round(full_wall, 1),
                "full_pass_epochs_to_fit": full.get("epochs_to_fit"),
                "full_pass_test_acc": full.get("test_acc"),
                "full_pass_best_test_acc": full.get("best_test_acc"),
                "test_evaluations": f"{len(evaluated)} of {len(full_rows)} epochs",
                "differs": differs,
            }
    ratio = naive_wall / rethink_wall
    out = {
        "dataset": a.dataset,
        "train_size": a.train_size,
        "threads": a.threads,
        "naive": {"wall_s": round(naive_wall, 1), "epochs": naive["epochs"],
                  "train_acc": naive["train_acc"], "test_acc": naive["test_acc"]},
        "rethink": {"wall_s": round(rethink_wall, 1), "epochs_to_fit": ours["epochs_to_fit"],
                    "epochs": ours["epochs"], "train_acc": ours["train_acc"],
                    "test_acc": ours["test_acc"], "best_test_acc": ours["best_test_acc"]},
        "ratio": round(ratio, 2),
        "load_before": load_before,
        "load_after": _load(),
        "full_pass_check": check,
    }  # fmt: skip
    print(f"until-fit, alexnet-small, random labels, {a.dataset} {a.train_size} images, "
          f"{a.threads} thread(s), load {load_before} -> {out['load_after']}")  # fmt: skip
    for name, r in (("naive", out["naive"]), ("rethink", out["rethink"])):
        ep = r.get("epochs_to_fit", r["epochs"])
        print(f"  {name:8s} {r['wall_s']:9.1f} s  {ep} epochs  train {r['train_acc']:.4f}  "
              f"test {r['test_acc']:.4f}")  # fmt: skip
    print(f"  ratio = naive wall / rethink wall = x{ratio:.2f}")
    if check is not None:
        verdict = "equal" if not check["differs"] else f"DIFFER: {check['differs']}"
        print(f"  full-pass engine: {check['full_pass_wall_s']} s, records {verdict}")
    if a.benchmarks_md:
        cmd = "python bench/until_fit.py " + shlex.join(sys.argv[1:])
        with open(a.benchmarks_md, "a") as f:
            f.write(
                f"\n## Whole until-fit run vs the naive loop ({started:%Y-%m-%d %H:%M} UTC)\n\n"
                f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
                f"load average {load_before} before, {out['load_after']} after.\n"
                f"Command: `{cmd}`\n\n"
                "| loop | wall s | epochs to fit | train acc | test acc |\n|---|---|---|---|---|\n"
                f"| naive_loop.py --eval-test | {naive_wall:.1f} | {naive['epochs']} | "
                f"{naive['train_acc']:.4f} | {naive['test_acc']:.4f} |\n"
                f"| rethink run (spaced test) | {rethink_wall:.1f} | {ours['epochs_to_fit']} | "
                f"{ours['train_acc']:.4f} | {ours['test_acc']:.4f} |\n\n"
                f"Ratio: **x{ratio:.2f}**.\n"
            )  # fmt: skip
            if check is not None:
                f.write(f"Full-pass engine on the same run: {json.dumps(check)}\n")
    if a.json:
        print(json.dumps(out))
    return 1 if check is not None and check["differs"] else 0


if __name__ == "__main__":
    sys.exit(main())
