"""The training loop: one function, `fit`, that reads top to bottom like nanoGPT's.

Data lives on the device as tensors. Each epoch draws a seeded permutation of the training
indices; a batch is a slice of it, gathered with one `index_select`; augmentation is batched
tensor code (rethink.augment). SGD with momentum, a stateless per-epoch lr schedule
(rethink.schedules). After every epoch a full pass in eval mode over the training set and the
test set gives the recorded losses and accuracies (inference mode, large batches).

Randomness: the batch order and augmentation come from one CPU `torch.Generator` derived from
the seed; dropout draws from torch's global generator, which `fit` forks and seeds so the
caller's global state is untouched. Both generator states travel in checkpoints, so a resumed
run on CPU is bit-identical to an uninterrupted one. `fit` knows nothing of stores or CLIs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rethink._evaluation import EVAL_BATCH, Evaluator, evaluate
from rethink.augment import augment
from rethink.schedules import lr_at
from rethink.spec import DEFAULT_MAX_EPOCHS, UNTIL_FIT_MAX_EPOCHS, TrainSpec

__all__ = ["EVAL_BATCH", "derive_seed", "evaluate", "fit"]

_PROGRESS_EVERY = 8  # batches between progress callbacks

OnEpoch = Callable[[dict[str, Any]], None]
OnCheckpoint = Callable[[int, dict[str, Any]], None]
Progress = Callable[[int, int, int], None]  # (epoch, batches done, batches per epoch)


def derive_seed(seed: int, stream: str) -> int:
    """An independent 63-bit seed for one named random stream ('order', 'dropout', ...)."""
    digest = hashlib.sha256(f"{int(seed)}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def fit(
    model: nn.Module,
    data: Any,
    train: TrainSpec,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    resume: dict[str, Any] | None = None,
    on_epoch: OnEpoch | None = None,
    on_checkpoint: OnCheckpoint | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Progress | None = None,
    overlap: bool = False,
) -> dict[str, Any]:
    """Train `model` on `data` under `train` (a normalized TrainSpec: lr resolved).

    data: x_train (N, C, H, W) float32, y_train (N,) int64, x_test, y_test, and optionally
    `changed` (N,) bool (which training labels a corruption changed).
    Calls on_epoch(record) after epoch 0 (evaluation before training) and every epoch;
    on_checkpoint(epoch, state) every `train.checkpoint_every` epochs and at the end, where
    `state` resumes the run bit-exactly (pass it back as `resume`). Returns the result dict:
    status 'finished', 'diverged' (with 'diverged_epoch') or 'interrupted' (should_stop said
    so; a checkpoint was given first), epochs, epochs_to_fit/steps_to_fit (None if never fit),
    final and best accuracies (fractions), losses, seconds of wall time (all attempts).

    overlap: evaluate epoch e on a second CPU core while epoch e+1 trains, each with one
    intra-op thread. The records are those of a sequential run on one thread; if epoch e ends
    the run, epoch e+1 is undone. Off by default: on an idle 2-core machine the
    sequential loop on 2 threads is faster (bench/throughput.py: 99k vs 55k samples/s for MLP
    1x512); overlap pays only on a machine whose other core is contended. It trains on one
    thread, so its float trajectory is that of a 1-thread run, not of the 2-thread default.
    """
    if train.max_epochs is None:  # as RunSpec.normalized() resolves it
        cap = UNTIL_FIT_MAX_EPOCHS if train.until_fit else DEFAULT_MAX_EPOCHS
        train = dataclasses.replace(train, max_epochs=cap)
    device = torch.device(device)
    model.to(device)
    data = _on_device(data, device)
    changed = getattr(data, "changed", None)
    if changed is not None and (bool(changed.all()) or not bool(changed.any())):
        changed = None  # only a mixed split says anything about memorization
    opt = torch.optim.SGD(
        model.parameters(), lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay
    )
    order = torch.Generator().manual_seed(derive_seed(seed, "order"))
    overlap = overlap and device.type == "cpu" and torch.get_num_threads() >= 2
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=fork_devices),
        Evaluator(model, data, changed, overlap) as evaluator,
    ):
        torch.random.default_generator.manual_seed(derive_seed(seed, "dropout"))
        if device.type == "cuda":
            torch.cuda.manual_seed(derive_seed(seed, "dropout"))
        s = _fresh_state() if resume is None else _restore(resume, model, opt, order, device)
        if resume is None:  # epoch 0: where training starts from
            t0 = time.perf_counter()
            rec = evaluator.submit(model, None).result()
            rec.pop("eval_seconds")
            s["seconds"] += time.perf_counter() - t0
            _note(s, rec, 0, 0, lr_at(train, 1), s["seconds"], on_epoch, train.fit_loss)
        t_start, seconds_before = time.perf_counter(), s["seconds"]

        def may_train() -> bool:
            fit = train.until_fit and s["fit_epoch"] is not None
            return s["epoch"] < train.max_epochs and not fit

        def finalize(p: dict[str, Any]) -> str | None:
            """Record a trained epoch once its evaluation is done; say why to stop, if so."""
            rec = p["future"].result()
            s["seconds"] = seconds_before + time.perf_counter() - t_start
            if not math.isfinite(rec["train_loss"]):
                s["diverged_epoch"] = p["epoch"]
                return "diverged"
            rec.update(running_loss=p["running"], train_seconds=p["train_seconds"])
            seconds = p["train_seconds"] + rec.pop("eval_seconds")
            _note(s, rec, p["epoch"], p["step"], p["lr"], seconds, on_epoch, train.fit_loss)
            stop = should_stop is not None and should_stop()
            if on_checkpoint is not None and (p["epoch"] % train.checkpoint_every == 0 or stop):
                snap = p["snap"] or _snapshot(model, opt, order)
                on_checkpoint(p["epoch"], {**s, "epoch": p["epoch"], "step": p["step"], **snap})
            if stop:
                return "interrupted"
            return "fit" if train.until_fit and s["fit_epoch"] is not None else None

        status, pending = "finished", None
        while True:
            trained = None
            if (pending is None or overlap) and may_train():
                trained = _train_epoch(model, opt, order, data, train, s, progress)
            if pending is not None:
                why, done = finalize(pending), pending
                pending = None
                if why is not None:
                    if trained is not None:  # the run ended before this epoch: undo it
                        _restore({**s, **done["snap"]}, model, opt, order, device)
                        s["epoch"], s["step"] = done["epoch"], done["step"]
                    status = "finished" if why == "fit" else why
                    break
            if trained is None:
                if may_train():
                    continue
                break
            if not math.isfinite(trained["running"]):
                status, s["diverged_epoch"] = "diverged", trained["epoch"]
                break
            trained["snap"] = _snapshot(model, opt, order) if overlap else None
            trained["future"] = evaluator.submit(model, trained["snap"])
            pending = trained
        s["seconds"] = seconds_before + time.perf_counter() - t_start
        if on_checkpoint is not None and status != "interrupted":
            on_checkpoint(s["epoch"], {**s, **_snapshot(model, opt, order), "final": status})
    return _result(s, status)


def _train_epoch(model, opt, order, data, train: TrainSpec, s: dict, progress) -> dict[str, Any]:
    """One pass over a fresh permutation of the training set; advances s epoch and step."""
    t0 = time.perf_counter()
    epoch = s["epoch"] + 1
    n, bs = len(data.y_train), train.batch_size
    lr = lr_at(train, epoch)
    for group in opt.param_groups:
        group["lr"] = lr
    model.train()
    device = data.x_train.device
    perm = torch.randperm(n, generator=order).to(device)
    loss_sum = torch.zeros((), device=device)
    nb = math.ceil(n / bs)
    for b in range(nb):
        idx = perm[b * bs : (b + 1) * bs]
        xb = augment(data.x_train.index_select(0, idx), train.augment, order)  # (B, C, H, W)
        loss = F.cross_entropy(model(xb), data.y_train.index_select(0, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach()
        if progress is not None and (b % _PROGRESS_EVERY == 0 or b == nb - 1):
            progress(epoch, b + 1, nb)
    s["epoch"], s["step"] = epoch, s["step"] + nb
    running = loss_sum.item() / nb  # also waits for the device to finish the epoch
    return {
        "epoch": epoch,
        "step": s["step"],
        "lr": lr,
        "running": running,
        "train_seconds": time.perf_counter() - t0,
    }


def _on_device(data: Any, device: torch.device) -> Any:
    if data.x_train.device == device:
        return data

    class _D:  # the tensors fit needs, moved once
        pass

    d = _D()
    for name in ("x_train", "y_train", "x_test", "y_test", "changed"):
        t = getattr(data, name, None)
        setattr(d, name, None if t is None else t.to(device))
    return d


def _fresh_state() -> dict[str, Any]:
    return {
        "epoch": 0,
        "step": 0,
        "seconds": 0.0,
        "fit_epoch": None,
        "fit_step": None,
        "best_test_acc": -1.0,
        "best_test_epoch": None,
        "last": None,  # the last epoch record
    }


def _note(
    s: dict,
    rec: dict,
    epoch: int,
    step: int,
    lr: float,
    seconds: float,
    on_epoch: OnEpoch | None,
    fit_loss: float | None,
) -> None:
    """Bookkeeping after an epoch's evaluation: fit time, best test accuracy, callback."""
    fit_now = rec.pop("fit") or (fit_loss is not None and rec["train_loss"] < fit_loss)
    if fit_now and s["fit_epoch"] is None:
        s["fit_epoch"], s["fit_step"] = epoch, step
    if rec["test_acc"] > s["best_test_acc"]:
        s["best_test_acc"], s["best_test_epoch"] = rec["test_acc"], epoch
    rec = {"epoch": epoch, "step": step, "lr": lr, "seconds": seconds, **rec}
    s["last"] = rec
    if on_epoch is not None:
        on_epoch(dict(rec))


def _snapshot(model: nn.Module, opt: torch.optim.Optimizer, order: torch.Generator) -> dict:
    """Copies of everything that changes while training (CPU tensors)."""
    state: dict[str, Any] = {}
    state["model"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    state["optimizer"] = _to_cpu(opt.state_dict())
    state["order_rng"] = order.get_state()
    state["cpu_rng"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_rng"] = torch.cuda.get_rng_state()
    return state


def _restore(state, model, opt, order, device) -> dict[str, Any]:
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    order.set_state(state["order_rng"])
    torch.set_rng_state(state["cpu_rng"])
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"])
    skip = ("model", "optimizer", "order_rng", "cpu_rng", "cuda_rng")
    return {k: v for k, v in state.items() if k not in skip}


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def _result(s: dict[str, Any], status: str) -> dict[str, Any]:
    last = s["last"] or {}
    out = {
        "status": status,
        "epochs": s["epoch"],
        "epochs_to_fit": s["fit_epoch"],
        "steps_to_fit": s["fit_step"],
        "steps": s["step"],
        "train_acc": last.get("train_acc"),
        "test_acc": last.get("test_acc"),
        "best_test_acc": s["best_test_acc"] if s["best_test_epoch"] is not None else None,
        "best_test_epoch": s["best_test_epoch"],
        "train_loss": last.get("train_loss"),
        "test_loss": last.get("test_loss"),
        "seconds": s["seconds"],
    }
    for key in ("changed_acc", "unchanged_acc"):
        if key in last:
            out[key] = last[key]
    if status == "diverged":
        out["diverged_epoch"] = s["diverged_epoch"]
    return out
