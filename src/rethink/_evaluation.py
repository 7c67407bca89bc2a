"""Evaluation passes: loss and accuracy over a whole split in eval mode (see rethink.train)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

EVAL_BATCH = 1024  # examples per forward pass when evaluating (no autograd, so memory is small)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The forward-pass context for `precision`: bf16 autocast on CUDA, nothing for fp32.
    bf16 anywhere else is refused by rethink.train.fit before training starts."""
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = EVAL_BATCH,
    *,
    logits_out: list[torch.Tensor] | None = None,
    precision: str = "fp32",
) -> tuple[float, torch.Tensor]:
    """Mean cross-entropy over (x (N, C, H, W), y (N,)) in eval mode, and correct (N,) bool.
    With `logits_out` (a list), the (N, K) logits are appended to it (per-example records).
    One host synchronization, at the end."""
    was_training = model.training
    model.eval()
    acc_dtype = torch.float32 if x.device.type == "mps" else torch.float64  # mps: no float64
    loss_sum = torch.zeros((), dtype=acc_dtype, device=x.device)
    correct = torch.empty(len(y), dtype=torch.bool, device=x.device)
    parts = []
    for i in range(0, len(y), batch_size):
        with autocast(x.device, precision):
            logits = model(x[i : i + batch_size]).float()  # (B, K)
        yb = y[i : i + batch_size]
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").to(acc_dtype)
        torch.eq(logits.argmax(1), yb, out=correct[i : i + batch_size])
        if logits_out is not None:
            parts.append(logits)
    model.train(was_training)
    if logits_out is not None:
        logits_out.append(torch.cat(parts) if parts else torch.empty(0))
    return float(loss_sum) / max(len(y), 1), correct


def train_metrics(
    model: nn.Module,
    data: Any,
    changed: torch.Tensor | None,
    *,
    keep_logits: bool = False,
    precision: str = "fp32",
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor | None]:
    """One full eval-mode pass over the training split.

    Returns (metrics, correct (N,) bool, training logits (N, K) or None). metrics:
    train_loss, train_acc, and for a mixed `changed` mask changed_acc / unchanged_acc
    (memorization vs learning)."""
    logits: list[torch.Tensor] | None = [] if keep_logits else None
    loss, correct = evaluate(
        model, data.x_train, data.y_train, logits_out=logits, precision=precision
    )
    rec: dict[str, Any] = {"train_loss": loss, "train_acc": correct.float().mean().item()}
    if changed is not None:
        rec["changed_acc"] = correct[changed].float().mean().item()
        rec["unchanged_acc"] = correct[~changed].float().mean().item()
    return rec, correct, (logits[0] if logits else None)


def holdout_metrics(model: nn.Module, data: Any, *, precision: str = "fp32") -> dict[str, float]:
    """One full eval-mode pass over the test split: test_loss, test_acc (nan if empty)."""
    loss, correct = evaluate(model, data.x_test, data.y_test, precision=precision)
    acc = correct.float().mean().item() if len(correct) else float("nan")
    return {"test_loss": loss, "test_acc": acc}


def eval_metrics(
    model: nn.Module,
    data: Any,
    changed: torch.Tensor | None,
    *,
    keep_logits: bool = False,
    precision: str = "fp32",
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor | None]:
    """Both splits: train_metrics plus holdout_metrics in one dict."""
    m, correct, logits = train_metrics(
        model, data, changed, keep_logits=keep_logits, precision=precision
    )
    return {**m, **holdout_metrics(model, data, precision=precision)}, correct, logits
