"""The training loop: `fit`, a generator that reads top to bottom like nanoGPT's loop.

    for rec in fit(model, data, spec.train, seed=spec.seed):
        print(rec.epoch, rec.train_acc, rec.test_acc)
        if rec.fit:                       # the caller decides when to stop
            break

Each epoch: set the lr, train one pass over a fresh seeded permutation of the training set,
evaluate (a full pass in eval mode over the training set; the test split on the epochs
`evaluates_test` names, see `train.test_eval`), yield one `EpochRecord`. Epoch 0 is the
evaluation before any training. The generator ends by itself
after `train.max_epochs` epochs or at divergence (the record says `diverged`); everything else
(until-fit, a time budget, Ctrl-C) is the caller's decision, made by stopping the iteration.

Data lives on the device as tensors; a batch is a slice of the permutation gathered with one
`index_select`; augmentation is batched tensor code (rethink.augment). No host
synchronization inside an epoch: the running loss and accuracy are summed on the device and
read once. `train.precision = "bf16"` runs forward passes under bf16 autocast (CUDA only).

Evaluation policy (docs/training.md): the training split is evaluated in full every epoch, so
the fit epoch (epochs_to_fit, steps_to_fit) is exactly the full-pass engine's. The test split
is evaluated at epoch 0, every epoch to 10, every 5th to 50, every 10th after, at the first
fit epoch, at a divergence and at train.max_epochs (`train.test_eval = "spaced"`), only at
those ends (epoch 0, the fit epoch, a divergence, the last: `"ends"`), or every epoch
(`"every-epoch"`, the default). An
epoch that did not evaluate the test split carries test_loss / test_acc = None;
best_test_acc is the best over evaluated epochs. The weights at every epoch are those of
the full-pass engine, so every number that is recorded equals its number.

Randomness: the batch order and augmentation come from one CPU `torch.Generator` seeded with
derive_seed(seed, "order"); dropout draws from torch's global generator, which `fit` forks and
seeds with derive_seed(seed, "dropout") so the caller's global state is untouched. Every
record carries `state()`, the checkpoint that resumes the run right after that epoch; pass it
back as `resume` and a CPU run is bit-identical to an uninterrupted one on the same thread
count. `fit` knows nothing of stores or CLIs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rethink._evaluation import EVAL_BATCH, autocast, evaluate, holdout_metrics, train_metrics
from rethink.augment import augment
from rethink.errors import RethinkError
from rethink.schedules import lr_at
from rethink.spec import DEFAULT_MAX_EPOCHS, UNTIL_FIT_MAX_EPOCHS, TrainSpec, derive_seed

__all__ = [
    "DIVERGE_FACTOR",
    "DIVERGE_PATIENCE",
    "EVAL_BATCH",
    "EpochRecord",
    "derive_seed",
    "evaluate",
    "fit",
    "result_of",
    "evaluates_test",
]

# Divergence: a non-finite loss, or the loss of the training pass itself (train mode: the
# objective SGD minimizes) above DIVERGE_FACTOR times the loss at epoch 0 (chance level, ln K
# for K classes) for DIVERGE_PATIENCE epochs in a row. Not the eval-mode loss: with BatchNorm
# on a small training set its running statistics can lag far behind weights that move fast,
# so the eval-mode loss explodes while training is healthy (inception-small, 500 CIFAR-10
# images, shuffled pixels, lr 0.1: eval-mode loss 85 at epoch 11 while the train-mode loss was
# 0.74 and falling).
DIVERGE_FACTOR = 10.0
DIVERGE_PATIENCE = 3
_PROGRESS_EVERY = 8  # batches between progress callbacks

Progress = Callable[[int, int, int], None]  # (epoch, batches done, batches per epoch)

# Keys of an epoch's metrics row (EpochRecord.metrics()), as the store keeps them.
METRIC_KEYS = (
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "seconds",
    "train_seconds",
    "eval_seconds",
    "running_loss",
    "running_acc",
    "changed_acc",
    "unchanged_acc",
)


@dataclass
class EpochRecord:
    """What one epoch measured (fractions for accuracies, nats for losses, wall seconds).

    epoch        0 = before training; n = after n passes over the training set
    step         optimization steps so far (batches)
    lr           the lr used during this epoch (epoch 0: the lr epoch 1 will use)
    train_loss / train_acc   full pass in eval mode over the (possibly corrupted) training set
    test_loss / test_acc     the same over the test split (None: not evaluated this epoch)
    running_loss / running_acc   mean loss / accuracy of the training pass itself (train
                 mode, weights changing through the epoch; None at epoch 0)
    seconds      wall time of this epoch (train_seconds + eval_seconds)
    changed_acc / unchanged_acc  training accuracy on the examples the corruption changed /
                 left alone (only when both kinds exist)
    fit          every training example is classified as its label (or train_loss < fit_loss)
    fit_epoch / fit_step     the first epoch (step) at which the run was fit, so far
    best_test_acc / best_test_epoch   the best test accuracy so far and where
    total_seconds            wall time of the whole run so far, all attempts
    diverged     a loss is non-finite, or the training pass's loss exploded (see
                 DIVERGE_FACTOR); the last record
    examples     per-example arrays (train.record_examples): correct, margin, loss, pred
    extra        more per-epoch metrics a caller measured (e.g. csr_train / csr_test)
    """

    epoch: int
    step: int
    lr: float
    train_loss: float
    train_acc: float
    test_loss: float | None
    test_acc: float | None
    seconds: float
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    running_loss: float | None = None
    running_acc: float | None = None
    changed_acc: float | None = None
    unchanged_acc: float | None = None
    fit: bool = False
    fit_epoch: int | None = None
    fit_step: int | None = None
    best_test_acc: float | None = None
    best_test_epoch: int | None = None
    total_seconds: float = 0.0
    diverged: bool = False
    examples: dict[str, Any] | None = field(default=None, repr=False)
    extra: dict[str, float] = field(default_factory=dict)
    _state: Callable[[], dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    def metrics(self) -> dict[str, Any]:
        """The epoch's row: METRIC_KEYS, without the ones that do not apply (None)."""
        row = {k: getattr(self, k) for k in METRIC_KEYS}
        row = {k: v for k, v in row.items() if v is not None or k in ("test_loss", "test_acc")}
        return {**row, **self.extra}

    def state(self) -> dict[str, Any]:
        """The checkpoint that resumes the run right after this epoch (CPU tensors). Valid
        until the generator is advanced."""
        if self._state is None:
            raise RuntimeError("this record carries no training state")
        return self._state()


def fit(
    model: nn.Module,
    data: Any,
    train: TrainSpec,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    resume: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> Iterator[EpochRecord]:
    """Train `model` on `data` under `train` (a normalized TrainSpec: lr resolved), one
    EpochRecord per epoch; see the module docstring.

    data: x_train (N, C, H, W) float32, y_train (N,) int64, x_test, y_test, and optionally
    `changed` (N,) bool (which training labels a corruption changed). resume: a record's
    state() from an earlier call with the same arguments; training continues after it."""
    if train.max_epochs is None:  # as RunSpec.normalized() resolves it
        cap = UNTIL_FIT_MAX_EPOCHS if train.until_fit else DEFAULT_MAX_EPOCHS
        train = dataclasses.replace(train, max_epochs=cap)
    device = torch.device(device)
    precision = getattr(train, "precision", "fp32")
    if precision == "bf16" and device.type != "cuda":
        raise RethinkError(
            f"train.precision bf16 needs a CUDA device (this run is on {device.type}); use fp32."
        )
    # per-example records are of the training split, which is evaluated in full every epoch
    # whatever test_eval says; the test split follows test_eval in every run
    test_eval = getattr(train, "test_eval", "every-epoch")
    model.to(device)
    data = _on_device(data, device)
    changed = getattr(data, "changed", None)
    if changed is not None and (bool(changed.all()) or not bool(changed.any())):
        changed = None  # only a mixed split says anything about memorization
    n = len(data.y_train)
    opt = torch.optim.SGD(
        model.parameters(), lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay
    )
    order = torch.Generator().manual_seed(derive_seed(seed, "order"))
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.random.default_generator.manual_seed(derive_seed(seed, "dropout"))
        if device.type == "cuda":
            torch.cuda.manual_seed(derive_seed(seed, "dropout"))
        s = _fresh_state() if resume is None else _restore(resume, model, opt, order, device)

        def snapshot() -> dict[str, Any]:
            return {**s, **_snapshot(model, opt, order)}

        def measure(epoch: int, lr: float, train_seconds: float, running):
            t0 = time.perf_counter()
            m, correct, logits = train_metrics(
                model, data, changed, keep_logits=train.record_examples, precision=precision
            )
            examples = None
            if logits is not None:
                from rethink.dynamics import example_arrays

                examples = example_arrays(logits, data.y_train)
            rec = EpochRecord(
                epoch=epoch,
                step=s["step"],
                lr=lr,
                test_loss=None,
                test_acc=None,
                seconds=0.0,
                train_seconds=train_seconds,
                running_loss=None if running is None else running[0],
                running_acc=None if running is None else running[1],
                examples=examples,
                _state=snapshot,
                **m,
            )
            rec.fit = bool(correct.all()) or (
                train.fit_loss is not None and rec.train_loss < train.fit_loss
            )
            first_fit = rec.fit and s["fit_epoch"] is None
            _account(s, rec)  # fit time and divergence: from the training split alone
            if (
                test_eval == "every-epoch"
                or epoch == 0
                or first_fit
                or rec.diverged
                or epoch >= train.max_epochs
                or (test_eval == "spaced" and evaluates_test(epoch))
            ):
                rec.test_loss, rec.test_acc = holdout_metrics(
                    model, data, precision=precision
                ).values()
                _best(s, rec)
            rec.eval_seconds = time.perf_counter() - t0
            rec.seconds = train_seconds + rec.eval_seconds
            return rec

        if resume is None:  # epoch 0: where training starts from
            rec = measure(0, lr_at(train, 1, n), 0.0, None)
            s["init_loss"] = rec.train_loss
            s["seconds"] += rec.seconds
            rec.total_seconds = s["seconds"]
            yield _close(s, rec)
            if rec.diverged:
                return

        while s["epoch"] < train.max_epochs:
            epoch = s["epoch"] + 1
            lr = lr_at(train, epoch, n)
            t0 = time.perf_counter()
            running = _train_epoch(model, opt, order, data, train, lr, epoch, progress, precision)
            s["epoch"], s["step"] = epoch, s["step"] + math.ceil(n / train.batch_size)
            rec = measure(epoch, lr, time.perf_counter() - t0, running)
            s["seconds"] += rec.seconds
            rec.total_seconds = s["seconds"]
            yield _close(s, rec)
            if rec.diverged:
                return


def evaluates_test(epoch: int) -> bool:
    """Whether `train.test_eval = "spaced"` evaluates the test split after `epoch` (besides
    the first fit epoch, a divergence and train.max_epochs, which always are): epochs 0-10,
    every 5th to 50, every 10th after."""
    if epoch <= 10:
        return True
    return epoch % (5 if epoch <= 50 else 10) == 0


def _train_epoch(
    model, opt, order, data, train: TrainSpec, lr, epoch, progress, precision="fp32"
) -> tuple[float, float]:
    """One pass over a fresh permutation of the training set; the mean running loss and the
    running accuracy (train mode, on the batches as trained). No host synchronization until
    the single read at the end."""
    for group in opt.param_groups:
        group["lr"] = lr
    model.train()
    n, bs = len(data.y_train), train.batch_size
    device = data.x_train.device
    perm = torch.randperm(n, generator=order).to(device)
    acc_dtype = torch.float32 if device.type == "mps" else torch.float64  # mps: no float64
    sums = torch.zeros(2, dtype=acc_dtype, device=device)  # loss over batches, correct
    nb = math.ceil(n / bs)
    for b in range(nb):
        idx = perm[b * bs : (b + 1) * bs]
        xb = augment(data.x_train.index_select(0, idx), train.augment, order)  # (B, C, H, W)
        yb = data.y_train.index_select(0, idx)
        with autocast(device, precision):
            logits = model(xb)
        loss = F.cross_entropy(logits.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            sums[0] += loss.detach()
            sums[1] += (logits.detach().argmax(1) == yb).sum()
        if progress is not None and (b % _PROGRESS_EVERY == 0 or b == nb - 1):
            progress(epoch, b + 1, nb)
    loss_sum, correct = sums.tolist()  # the one read per epoch; waits for the device
    return loss_sum / nb, correct / n


def _account(s: dict[str, Any], rec: EpochRecord) -> None:
    """Run-level bookkeeping after an epoch's evaluation: fit time, best test, divergence."""
    if rec.fit and s["fit_epoch"] is None:
        s["fit_epoch"], s["fit_step"] = rec.epoch, rec.step
    _best(s, rec)
    objective = rec.train_loss if rec.running_loss is None else rec.running_loss
    if not (math.isfinite(rec.train_loss) and math.isfinite(objective)):
        rec.diverged = True
    elif s.get("init_loss") is not None and objective > DIVERGE_FACTOR * s["init_loss"]:
        s["over"] = s.get("over", 0) + 1
        rec.diverged = s["over"] >= DIVERGE_PATIENCE
    else:
        s["over"] = 0
    if rec.diverged:
        s["diverged_epoch"] = rec.epoch


def _best(s: dict[str, Any], rec: EpochRecord) -> None:
    """The best test accuracy so far, over the epochs that evaluated the test split."""
    if rec.test_acc is not None and math.isfinite(rec.test_acc):
        if rec.test_acc > s["best_test_acc"]:
            s["best_test_acc"], s["best_test_epoch"] = rec.test_acc, rec.epoch


def _close(s: dict[str, Any], rec: EpochRecord) -> EpochRecord:
    rec.fit_epoch, rec.fit_step = s["fit_epoch"], s["fit_step"]
    if s["best_test_epoch"] is not None:
        rec.best_test_acc, rec.best_test_epoch = s["best_test_acc"], s["best_test_epoch"]
    s["last"] = rec.metrics()
    return rec


def result_of(state_or_record: dict[str, Any] | EpochRecord, status: str) -> dict[str, Any]:
    """The result dict of a run that ended with `status` at this record (or checkpoint state):
    status, epochs, epochs_to_fit / steps_to_fit (None if never fit), steps, final and best
    accuracies (fractions), final losses, seconds (wall time, all attempts)."""
    if isinstance(state_or_record, EpochRecord):
        r = state_or_record
        last = r.metrics()
        s = {
            "epoch": r.epoch,
            "step": r.step,
            "fit_epoch": r.fit_epoch,
            "fit_step": r.fit_step,
            "best_test_acc": r.best_test_acc,
            "best_test_epoch": r.best_test_epoch,
            "seconds": r.total_seconds,
            "diverged_epoch": r.epoch if r.diverged else None,
        }
    else:
        s, last = state_or_record, state_or_record.get("last") or {}
    out = {
        "status": status,
        "epochs": s["epoch"],
        "epochs_to_fit": s["fit_epoch"],
        "steps_to_fit": s["fit_step"],
        "steps": s["step"],
        "train_acc": last.get("train_acc"),
        "test_acc": last.get("test_acc"),
        "best_test_acc": s["best_test_acc"] if s.get("best_test_epoch") is not None else None,
        "best_test_epoch": s.get("best_test_epoch"),
        "train_loss": last.get("train_loss"),
        "test_loss": last.get("test_loss"),
        "seconds": s["seconds"],
    }
    for key in ("changed_acc", "unchanged_acc"):
        if last.get(key) is not None:
            out[key] = last[key]
    if status == "diverged":
        out["diverged_epoch"] = s.get("diverged_epoch")
    return out


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
        "init_loss": None,  # training loss at epoch 0 (the divergence reference)
        "over": 0,  # epochs in a row above DIVERGE_FACTOR x init_loss
        "diverged_epoch": None,
        "last": None,  # the last epoch's metrics
    }


# Everything a checkpoint must hold to resume; rethink.lifecycle checks it before resuming.
STATE_KEYS = ("epoch", "step", "seconds", "model", "optimizer", "order_rng", "cpu_rng")


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
    s = _fresh_state()
    s.update({k: v for k, v in state.items() if k not in skip and k in s})
    return s


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj
