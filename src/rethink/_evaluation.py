"""Evaluation passes: loss and accuracy over a whole split in eval mode, and the evaluator
that runs them either inline or in a worker thread beside training (see rethink.train)."""

from __future__ import annotations

import copy
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

EVAL_BATCH = 1024  # examples per forward pass when evaluating (no autograd, so memory is small)


@torch.inference_mode()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH
) -> tuple[float, torch.Tensor]:
    """Mean cross-entropy over (x (N, C, H, W), y (N,)) in eval mode, and correct (N,) bool."""
    was_training = model.training
    model.eval()
    acc_dtype = torch.float32 if x.device.type == "mps" else torch.float64  # mps: no float64
    loss_sum = torch.zeros((), dtype=acc_dtype, device=x.device)
    correct = torch.empty(len(y), dtype=torch.bool, device=x.device)
    for i in range(0, len(y), batch_size):
        logits = model(x[i : i + batch_size])  # (B, K)
        yb = y[i : i + batch_size]
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").to(acc_dtype)
        torch.eq(logits.argmax(1), yb, out=correct[i : i + batch_size])
    model.train(was_training)
    return float(loss_sum) / max(len(y), 1), correct


def _eval_record(model: nn.Module, data: Any, changed: torch.Tensor | None) -> dict[str, Any]:
    train_loss, correct = evaluate(model, data.x_train, data.y_train)
    test_loss, test_correct = evaluate(model, data.x_test, data.y_test)
    rec = {
        "train_loss": train_loss,
        "train_acc": correct.float().mean().item(),
        "test_loss": test_loss,
        "test_acc": test_correct.float().mean().item() if len(test_correct) else float("nan"),
    }
    if changed is not None:  # memorization (changed labels) vs learning (unchanged ones)
        rec["changed_acc"] = correct[changed].float().mean().item()
        rec["unchanged_acc"] = correct[~changed].float().mean().item()
    rec["fit"] = bool(correct.all().item())
    return rec


class Evaluator:
    """Evaluates on the training and test sets, in this thread or (overlap) in a worker
    thread on a private copy of the model, while the caller trains on."""

    def __init__(self, model: nn.Module, data: Any, changed, overlap: bool) -> None:
        self.data, self.changed, self.overlap = data, changed, overlap
        self.copy = copy.deepcopy(model) if overlap else None
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="rethink-eval") if overlap else None
        self.threads = torch.get_num_threads()

    def __enter__(self) -> Evaluator:
        if self.overlap:
            torch.set_num_threads(1)  # one core trains, the other evaluates
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            torch.set_num_threads(self.threads)

    def submit(self, model: nn.Module, snap: dict[str, Any] | None) -> Future:
        if self.pool is None or snap is None:
            done: Future = Future()
            done.set_result(self._run(model))
            return done
        self.copy.load_state_dict(snap["model"])
        return self.pool.submit(self._run, self.copy)

    def _run(self, model: nn.Module) -> dict[str, Any]:
        t0 = time.perf_counter()
        rec = _eval_record(model, self.data, self.changed)
        rec["eval_seconds"] = time.perf_counter() - t0
        return rec
