"""The done-when run of issue 13 through the Python API, with the spaced test schedule.

    RETHINK_DATA=/work/shared/data python bench/evidence_run.py [--store runs/cifar-evidence.db]

= `rethink run --dataset cifar10-jpeg --train-size 1000 --preprocess paper --model
alexnet-small --corruption random-labels --schedule paper --lr 0.01 --until-fit --threads 1
--set train.test_eval=spaced`, run through rethink.runner.run because the CLI's plain epoch
line cannot print an epoch whose test split was not evaluated yet (cli/_run_output). Prints
one JSON line per epoch and the result.
"""

from __future__ import annotations

import argparse
import json

from rethink import runner
from rethink.spec import RunSpec

p = argparse.ArgumentParser()
p.add_argument("--store", default="runs/cifar-evidence.db")
p.add_argument("--train-size", type=int, default=1000)
p.add_argument("--test-eval", default="spaced")
p.add_argument("--dataset", default="cifar10-jpeg")
p.add_argument("--max-epochs", type=int, default=None)
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
spec = RunSpec.from_dict({
    "dataset": a.dataset, "train_size": a.train_size, "preprocess": "paper",
    "model.name": "alexnet-small", "labels": "random-labels", "schedule": "paper", "lr": 0.01,
    "until_fit": True, "test_eval": a.test_eval,
    **({} if a.max_epochs is None else {"max_epochs": a.max_epochs}),
})  # fmt: skip
print("run", spec.run_id(), flush=True)


def show(rec):
    m = rec.metrics()
    keep = ("epoch", "train_acc", "test_acc", "running_acc", "train_seconds", "eval_seconds")
    print(json.dumps({k: m.get(k) for k in keep}), flush=True)


r = runner.run(spec, store=a.store, device="cpu", threads=a.threads, on_epoch=show)
r["run_id"] = spec.run_id()
print(json.dumps(r, default=str), flush=True)
