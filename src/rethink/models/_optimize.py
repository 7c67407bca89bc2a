"""Make a model train faster on its device without changing what it computes.

`optimize_for_training(model, device)` works in place and returns the same module: its
parameters stay the same tensor objects and its state_dict the same keys, so build the
optimizer after calling it (or before: the parameters are the same objects either way) and
save/load checkpoints as usual.
"""

from __future__ import annotations

import os
import shutil

import torch
from torch import nn

from rethink.errors import RethinkError


def _to_channels_last(module: nn.Module, args: tuple) -> tuple | None:
    # Forward pre-hook: 4-d inputs enter in channels_last order, which oneDNN (CPU) and
    # cuDNN convolutions use without reordering every call.
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return None


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def compiler_available(device: torch.device | str = "cpu") -> bool:
    """Whether torch.compile can generate code for `device` here: CUDA needs Triton, CPU a C++
    compiler ($CXX, g++, c++ or clang++)."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return True
    if device.type == "cpu":
        names = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
        return any(n and shutil.which(n) for n in names)
    return False


def optimize_for_training(
    model: nn.Module,
    device: torch.device | str = "cpu",
    *,
    compile: bool | None = None,
    channels_last: bool | None = None,
) -> nn.Module:
    """Move `model` to `device` and speed up its training steps; returns `model` itself.

    - channels_last (None: on CUDA, for models with 2-d convolutions; on CPU only for a
      model whose class sets `cpu_channels_last = True` (alexnet-small), because torch
      2.13's channels_last convolution backward segfaults for resnet18-k2 on this
      project's AMD EPYC machines, measured 2026-12-01): weights and, through a
      forward pre-hook, every 4-d input use NHWC memory order. Same numbers up to float
      rounding; parameter shapes and names do not change.
    - compile (None: only on CUDA, where a compiler exists): `model.compile()` in place, so
      `model(x)` runs the compiled code and state_dict keys keep no `_orig_mod.` prefix. On a
      CPU the first step of each new batch size or train/eval mode pays the compile time
      (measured in docs/models.md); pass compile=True for long runs. compile=True without a
      usable compiler raises RethinkError.
    """
    device = torch.device(device)
    model.to(device)
    if channels_last is None:
        wanted = device.type == "cuda" or getattr(model, "cpu_channels_last", False)
        channels_last = bool(wanted) and _has_conv(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        if not getattr(model, "_rethink_channels_last_hook", False):
            model.register_forward_pre_hook(_to_channels_last)
            model._rethink_channels_last_hook = True
    if compile is None:
        compile = device.type == "cuda" and compiler_available(device)
    if compile:
        if not compiler_available(device):
            raise RethinkError(
                f"torch.compile needs a C++ compiler (CPU) or Triton (CUDA) for {device.type}, "
                "and none was found; run without compiling."
            )
        model.compile()
    return model
