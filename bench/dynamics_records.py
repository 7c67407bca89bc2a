"""Per-example records on real runs: what they cost, how big they are, what they show.

    RETHINK_DATA=../shared/data python bench/dynamics_records.py --store dyn.db \
        [--dataset cifar10-jpeg] [--train-size 2000] [--model mlp-1x512] [--epochs 60] \
        [--lr 0.01] [--settings none,0.2,0.4,1.0] [--csr-radius 0.03] [--json]

For each setting (`none` = true labels, a number p = partial-labels at that p, a corruption
kind such as `cifar10n-worst`, or `noise-matrix:cifar10n-worst`) this trains
one run with rethink's engine (runner.setup + train.fit, constant lr), and after every epoch
(epoch 0 included) stores the record's per-example arrays (train.record_examples: the
engine's own evaluation pass runs rethink.dynamics.example_arrays) with write_epoch; at the epochs
rethink.dynamics.csr_epochs picks it measures the critical sample ratio on the fixed
csr_sample (200 train / 200 test points) and stores csr_train / csr_test with the epoch's
metrics. The store then reads like one the engine would write once the lead wires
`train.record_examples` in: `rethink dynamics scores`, `rethink dynamics export` and
rethink.dynamics.report work on it.

Timed per epoch: the training steps and the evaluation pass (fit's train_seconds and
eval_seconds, the latter including example_arrays), the store write (write_epoch), and
example_arrays alone on logits of the same shape. Size: the compressed bytes of each run's
records, per example and epoch, and
extrapolated to 50,000 examples x 100 epochs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--dataset", default="cifar10-jpeg")
    ap.add_argument("--preprocess", default="paper")
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--model", default="mlp-1x512")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--settings", default="none,0.2,0.4,1.0")
    ap.add_argument("--csr-radius", type=float, default=None, help="model-input units")
    ap.add_argument("--csr-pixel-radius", type=float, default=None, help="[0, 1] pixel units")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from rethink import dynamics as D
    from rethink.dynamics._csr import CSR_PIXEL_RADIUS
    from rethink.runner import load_dataset, setup
    from rethink.spec import RunSpec
    from rethink.store import Store
    from rethink.train import fit

    summary = []
    for setting in args.settings.split(","):
        corr = _corruption(setting)
        spec = RunSpec.from_dict({
            "data": {"dataset": args.dataset, "train_size": args.train_size,
                     "preprocess": args.preprocess},
            "corruption": corr, "model": {"name": args.model},
            "train": {"lr": args.lr, "schedule": "constant", "max_epochs": args.epochs,
                      "checkpoint_every": args.epochs, "record_examples": True},
            "seed": args.seed,
        }).normalized()  # fmt: skip
        job = setup(spec, device="cpu")
        data, model = job.data, job.model
        radius = args.csr_radius
        if radius is None:
            raw = load_dataset(spec).x_train[:500].float() / 255.0

            pixel = args.csr_pixel_radius if args.csr_pixel_radius else CSR_PIXEL_RADIUS
            if raw.shape[-1] != data.x_train.shape[-1]:  # paper preprocessing crops to 28
                c = (raw.shape[-1] - data.x_train.shape[-1]) // 2
                raw = raw[..., c : c + data.x_train.shape[-1], c : c + data.x_train.shape[-1]]
            radius = D.pixel_radius(pixel, raw, data.x_train[:500])
        sample = D.csr_sample(len(data.y_train), len(data.y_test))
        csr_at = set(D.csr_epochs(args.epochs))
        st = Store(args.store)
        st.begin_run(job.run_id, spec.to_dict(), sweep="dynamics-bench")
        st.truncate_epochs(job.run_id, -1)
        D.write_run_arrays(st.db, job.run_id, data.y_train, data.y_train_clean, data.changed)
        D.truncate_records(st.db, job.run_id, -1)
        times = {"train": 0.0, "eval": 0.0, "book": 0.0, "csr": 0.0}
        last = None
        for rec in fit(model, data, spec.train, seed=spec.seed):
            e = rec.epoch
            times["train"] += rec.train_seconds
            times["eval"] += rec.eval_seconds
            t0 = time.perf_counter()
            D.write_epoch(st.db, job.run_id, e, rec.examples)
            t1 = time.perf_counter()
            row = rec.metrics()
            if e in csr_at or e == spec.train.max_epochs or rec.diverged:
                row.update(D.csr_metrics(model, data.x_train, data.x_test, sample=sample,
                                         radius=radius, epoch=e))  # fmt: skip
            times["csr"] += time.perf_counter() - t1
            times["book"] += t1 - t0
            st.append_epoch(job.run_id, row)
            last = rec
        result = {"epochs": last.epoch, "train_acc": last.train_acc, "test_acc": last.test_acc}
        result["status"] = "diverged" if last.diverged else "finished"
        st.finish(job.run_id, result["status"], {**result, "params": job.params})
        size = D.size_bytes(st.db, job.run_id)
        st.close()
        n, e = len(data.y_train), result["epochs"] + 1
        z = torch.randn(n, data.num_classes)
        t0 = time.perf_counter()
        for _ in range(5):
            D.example_arrays(z, data.y_train)
        arrays_s = (time.perf_counter() - t0) / 5
        row = {
            "setting": setting, "run_id": job.run_id, "examples": n, "epochs_recorded": e,
            "train_acc": result["train_acc"], "test_acc": result["test_acc"],
            "noise_rate": float(data.changed.float().mean()), "csr_radius": radius,
            "train_s_per_epoch": times["train"] / max(1, e - 1),
            "eval_s_per_epoch": times["eval"] / e, "write_s_per_epoch": times["book"] / e,
            "example_arrays_s": arrays_s,
            "csr_s_total": times["csr"], "record_bytes": size,
            "bytes_per_example_epoch": size / (n * e),
            "mb_at_50k_x_100": size / (n * e) * 50_000 * 100 / 1e6,
        }  # fmt: skip
        summary.append(row)
        print(json.dumps(row) if args.json else row, flush=True)
    return 0


def _corruption(setting: str) -> dict:
    """'none', a number p (partial-labels at p), a kind ('cifar10n-worst') or
    'noise-matrix:MATRIX'."""
    if setting == "none":
        return {"kind": "none"}
    if setting.startswith("noise-matrix:"):
        return {"kind": "noise-matrix", "matrix": setting.split(":", 1)[1]}
    try:
        return {"kind": "partial-labels", "prob": float(setting)}
    except ValueError:
        return {"kind": setting}


if __name__ == "__main__":
    sys.exit(main())
