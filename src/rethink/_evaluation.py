"""Evaluation passes: loss and accuracy over a whole split in eval mode (see rethink.train)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

EVAL_BATCH = 1024  # examples per forward pass when evaluating (no autograd, so memory is small)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = EVAL_BATCH,
    *,
    logits_out: list[torch.Tensor] | None = None,
) -> tuple[float, torch.Tensor]:
    """Mean cross-entropy over (x (N, C, H, W), y (N,)) in eval mode, and correct (N,) bool.
    With `logits_out` (a list), the (N, K) logits are appended to it (per-example records)."""
    was_training = model.training
    model.eval()
    acc_dtype = torch.float32 if x.device.type == "mps" else torch.float64  # mps: no float64
    loss_sum = torch.zeros((), dtype=acc_dtype, device=x.device)
    correct = torch.empty(len(y), dtype=torch.bool, device=x.device)
    parts = []
    for i in range(0, len(y), batch_size):
        logits = model(x[i : i + batch_size])  # (B, K)
        yb = y[i : i + batch_size]
        loss_sum += F.cross_entropy(logits.float(), yb, reduction="sum").to(acc_dtype)
        torch.eq(logits.argmax(1), yb, out=correct[i : i + batch_size])
        if logits_out is not None:
            parts.append(logits.float())
    model.train(was_training)
    if logits_out is not None:
        logits_out.append(torch.cat(parts) if parts else torch.empty(0))
    return float(loss_sum) / max(len(y), 1), correct


def eval_metrics(
    model: nn.Module, data: Any, changed: torch.Tensor | None, *, keep_logits: bool = False
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor | None]:
    """One full eval-mode pass over the training and the test split.

    Returns (metrics, correct (N,) bool over the training set, training logits (N, K) or
    None). metrics: train_loss, train_acc, test_loss, test_acc, and for a mixed `changed`
    mask changed_acc / unchanged_acc (memorization vs learning)."""
    logits: list[torch.Tensor] | None = [] if keep_logits else None
    train_loss, correct = evaluate(model, data.x_train, data.y_train, logits_out=logits)
    test_loss, test_correct = evaluate(model, data.x_test, data.y_test)
    rec: dict[str, Any] = {
        "train_loss": train_loss,
        "train_acc": correct.float().mean().item(),
        "test_loss": test_loss,
        "test_acc": test_correct.float().mean().item() if len(test_correct) else float("nan"),
    }
    if changed is not None:
        rec["changed_acc"] = correct[changed].float().mean().item()
        rec["unchanged_acc"] = correct[~changed].float().mean().item()
    return rec, correct, (logits[0] if logits else None)
