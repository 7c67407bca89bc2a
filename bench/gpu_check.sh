#!/usr/bin/env bash
# GPU check: fit random and true labels with inception-small (CIFAR-10 JPEG) and mlp-1x512
# (Fashion-MNIST) on a CUDA GPU, offline, and print epochs-to-fit, seconds and samples/s.
#
#   bench/gpu_check.sh DATA_DIR [--smoke] [--models mlp-1x512,inception-small] [--budget S]
#
# DATA_DIR holds Fashion-MNIST's four IDX files (in DATA_DIR or DATA_DIR/fashion-mnist/) and
# cifar10-jpeg.tar.gz (in DATA_DIR or DATA_DIR/cifar10-jpeg/). Needs python3 with torch (CUDA),
# numpy and pillow; uses this checkout's src/ (no install, no network). Each of the four runs
# stops at 100% training accuracy or after --budget seconds of training (default 95), so the
# whole check ends in under 8 minutes including decoding the 60,000 JPEGs (about 20 s).
# --smoke: tiny subsets for 1-2 epochs on whatever device exists (CPU too): a test runs it.
#
#   bench/gpu_check.sh DATA_DIR --paper [--budget S] [--jobs N] [--precision fp32|bf16]
#                               [--out DIR] [--smoke]
#
# --paper: `rethink reproduce fig1a --scale paper` (inception-small, all 50,000 CIFAR-10 JPEG
# images, the five settings, until fit; the test split on the spaced schedule) stopped after
# --budget seconds (default 600: the issue's goal is all five fit in <= 10 min on one
# H100/H200), then one line per run (status, epochs / steps to fit, train and test accuracy,
# samples/s of training) and the report (rethink report on the store, in --out). With
# --smoke it runs the same code path at --scale smoke on any device (tests/test_bench_gpu.py).
set -euo pipefail
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: $0 DATA_DIR [--smoke] [--models LIST] [--budget SECONDS]" >&2
  exit 2
fi
DATA_DIR="$1"; shift
if [ ! -d "$DATA_DIR" ]; then
  echo "error: the data folder $DATA_DIR does not exist." >&2
  exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$HERE/src${PYTHONPATH:+:$PYTHONPATH}"
export RETHINK_CACHE="${RETHINK_CACHE:-$(mktemp -d)}"  # decoded arrays; nothing else written
exec "${PYTHON:-python3}" - "$DATA_DIR" "$@" <<'PY'
import argparse, dataclasses, json, sys, time

import torch

from rethink import runner
from rethink.errors import RethinkError
from rethink.spec import RunSpec

p = argparse.ArgumentParser(prog="gpu_check.sh")
p.add_argument("data_dir")
p.add_argument("--smoke", action="store_true", help="tiny subsets, any device (a test)")
p.add_argument("--models", default="mlp-1x512,inception-small")
p.add_argument("--budget", type=float, default=None,
               help="training seconds per run (default 95); with --paper: the whole budget "
               "(default 600)")
p.add_argument("--paper", action="store_true", help="reproduce fig1a --scale paper")
p.add_argument("--jobs", type=int, default=1, help="--paper: runs at once on the device")
p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
p.add_argument("--out", default=None, help="--paper: the report folder (default: a temp dir)")
a = p.parse_args()
if a.paper:
    import os, signal, subprocess, tempfile
    from rethink.store import Store

    budget = 600.0 if a.budget is None else a.budget
    cuda = torch.cuda.is_available()
    if not cuda and not a.smoke:
        sys.exit("error: no CUDA GPU is visible to torch; use --smoke to try the script on a "
                 "CPU.")
    if a.precision == "bf16" and not cuda:
        sys.exit("error: --precision bf16 needs a CUDA GPU.")
    out = a.out or tempfile.mkdtemp(prefix="rethink-fig1a-paper-")
    scale = "smoke" if a.smoke else "paper"
    cmd = [sys.executable, "-m", "rethink", "reproduce", "fig1a", "--scale", scale,
           "--out", out, "--data-dir", a.data_dir, "--device", "cuda" if cuda else "cpu",
           "--jobs", str(a.jobs), "--set", "train.test_eval=spaced",
           "--set", f"train.precision={a.precision}"]
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=sys.stderr, start_new_session=True)
    try:
        code = proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # the sweep checkpoints and stops its runs
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
        print(f"budget of {budget:.0f} s reached; runs stopped", file=sys.stderr)
    wall = time.perf_counter() - t0
    store = os.path.join(out, "runs.db")
    if not os.path.exists(store):
        sys.exit(f"error: reproduce wrote no store ({store}); exit status {code}.")
    rows = []
    with Store(store) as st:
        for run in st.runs():
            eps = st.epochs(run["run_id"])
            res = run.get("result") or {}
            spec = run.get("spec") or {}
            n = (spec.get("data") or {}).get("train_size") or 50000
            train_s = sum(e.get("train_seconds") or 0.0 for e in eps[1:])
            last = eps[-1] if eps else {}
            rows.append({
                "setting": (spec.get("corruption") or {}).get("kind"),
                "status": run.get("status"), "epochs": last.get("epoch"),
                "epochs_to_fit": res.get("epochs_to_fit"), "steps_to_fit": res.get("steps_to_fit"),
                "steps": last.get("step"), "train_acc": last.get("train_acc"),
                "test_acc": res.get("test_acc"),
                "samples_per_s": round(n * (len(eps) - 1) / train_s, 1) if train_s else None,
            })
    if code != 0:  # cut short by the budget: reproduce wrote no report; write it now
        subprocess.run([sys.executable, "-m", "rethink", "report", store, "--out", out],
                       stdout=subprocess.DEVNULL, check=False)
    name = torch.cuda.get_device_name(0) if cuda else "CPU (smoke)"
    print(f"fig1a --scale {scale} on {name}, torch {torch.__version__}, {a.precision}, "
          f"--jobs {a.jobs}: {wall:.0f} s of a {budget:.0f} s budget")
    fmt = "{:16s} {:12s} {:>6s} {:>7s} {:>8s} {:>9s} {:>8s} {:>10s}"
    print(fmt.format("setting", "status", "epochs", "to fit", "steps", "train acc",
                     "test acc", "samples/s"))
    pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"
    for r in rows:
        print(fmt.format(str(r["setting"]), str(r["status"]), str(r["epochs"]),
                         str(r["epochs_to_fit"] or "never"), str(r["steps_to_fit"] or "-"),
                         pct(r["train_acc"]), pct(r["test_acc"]), str(r["samples_per_s"])))
    fitted = sum(r["epochs_to_fit"] is not None for r in rows)
    print(f"{fitted} of {len(rows)} settings fit; report: {out}")
    print(json.dumps({"device": name, "scale": scale, "wall_s": round(wall, 1),
                      "budget_s": budget, "rows": rows, "report": out}))
    sys.exit(0)
if a.budget is None:
    a.budget = 95.0
cuda = torch.cuda.is_available()
if not cuda and not a.smoke:
    sys.exit("error: no CUDA GPU is visible to torch; use --smoke to try the script on a CPU.")
device = "cuda" if cuda else "cpu"
# (model, dataset, preprocessing, lr, schedule, training images, test images, epoch cap)
PLAN = {
    "mlp-1x512": ("fashion-mnist", "standardize", 0.01, "constant", 10000, None, 400),
    "inception-small": ("cifar10-jpeg", "paper", 0.1, "paper", 10000, None, 150),
}
SMOKE = {"mlp-1x512": (512, 256, 2), "inception-small": (128, 128, 1)}
rows = []
t_all = time.perf_counter()
for model in [m.strip() for m in a.models.split(",") if m.strip()]:
    if model not in PLAN:
        sys.exit(f"error: --models takes {', '.join(PLAN)}, not {model!r}.")
    dataset, prep, lr, schedule, n_train, n_test, cap = PLAN[model]
    if a.smoke:
        n_train, n_test, cap = SMOKE[model]
    for labels in ("none", "random-labels"):
        spec = RunSpec.from_dict({
            "dataset": dataset, "train_size": n_train, "preprocess": prep, "labels": labels,
            "model.name": model, "lr": lr, "schedule": schedule, "until_fit": True,
            "max_epochs": cap,
        })
        try:
            # compile off: recompiling per batch shape would make the time unpredictable
            job = runner.setup(spec, data_dir=a.data_dir, device=device, compile=False)
        except RethinkError as err:
            sys.exit(f"error: {err}")
        if n_test is not None:  # smoke: a small test split keeps CPU evaluation short
            d = job.data
            job.data = dataclasses.replace(d, x_test=d.x_test[:n_test], y_test=d.y_test[:n_test])
        records, deadline = [], time.perf_counter() + a.budget
        r = runner.execute(job, on_epoch=records.append,
                           should_stop=lambda: time.perf_counter() > deadline)
        steps_s = sum((rec.train_seconds or 0.0) for rec in records[1:]) or float("nan")
        rows.append({
            "model": model, "dataset": dataset, "labels": "true" if labels == "none" else "random",
            "train_size": n_train, "status": "time cap" if r["status"] == "interrupted"
            else r["status"], "epochs": r["epochs"], "epochs_to_fit": r["epochs_to_fit"],
            "steps_to_fit": r["steps_to_fit"], "train_acc": r["train_acc"],
            "test_acc": r["test_acc"], "seconds": round(r["seconds"], 1),
            "samples_per_s": round(n_train * r["epochs"] / steps_s, 1),
        })
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
name = torch.cuda.get_device_name(0) if cuda else "CPU (smoke)"
print(f"rethink GPU check on {name}, torch {torch.__version__}, "
      f"{time.perf_counter() - t_all:.0f} s in all")
head = ("model", "dataset", "labels", "n", "status", "epochs", "to fit", "train acc",
        "test acc", "seconds", "samples/s")
print(("{:16s} {:14s} {:7s} {:>6s} {:9s} {:>6s} {:>6s} {:>9s} {:>8s} {:>8s} {:>10s}")
      .format(*head))
for r in rows:
    fit = "never" if r["epochs_to_fit"] is None else str(r["epochs_to_fit"])
    print(f"{r['model']:16s} {r['dataset']:14s} {r['labels']:7s} {r['train_size']:6d} "
          f"{r['status']:9s} {r['epochs']:6d} {fit:>6s} {100 * r['train_acc']:8.2f}% "
          f"{100 * r['test_acc']:7.2f}% {r['seconds']:8.1f} {r['samples_per_s']:10.1f}")
print(json.dumps({"device": name, "rows": rows}))
PY
