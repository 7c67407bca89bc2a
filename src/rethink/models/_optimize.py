"""Make a model train faster on its device without changing what it computes.

`optimize_for_training(model, device)` works in place and returns the same module: its
parameters stay the same tensor objects and its state_dict the same keys, so build the
optimizer after calling it (or before: the parameters are the same objects either way) and
save/load checkpoints as usual.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys

import torch
from torch import nn

from rethink.errors import RethinkError


def _to_channels_last(module: nn.Module, args: tuple) -> tuple | None:
    # Forward pre-hook: 4-d inputs enter in channels_last order, which oneDNN (CPU) and
    # cuDNN convolutions use without reordering every call.
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return None


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_malloc_tuned: bool | None = None


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks for reuse (Linux; once per process).

    By default glibc serves every allocation above a threshold (at most 32 MiB) with a fresh
    mmap and unmaps it on free, so each large activation tensor of a convnet is page-faulted
    in again, page by page, at every batch: alexnet-small's evaluation at batch 1,024 took
    1.4 million minor faults and spent 39% of its CPU time in the kernel (measured 2026-12-01,
    one thread). Raising the mmap and trim thresholds to 1 GiB makes the same pass fault
    3,000 times: evaluation x1.70 (396 -> 672 samples/s), training steps x1.31 (176 -> 231),
    both with both cores busy. Nothing computed changes; the cost is that the process keeps
    its peak memory instead of handing it back. RETHINK_MALLOC=system leaves malloc alone.
    Returns whether the thresholds are set (False off glibc or when opted out)."""
    global _malloc_tuned
    if _malloc_tuned is None:
        _malloc_tuned = False
        if os.environ.get("RETHINK_MALLOC", "") != "system" and sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL("libc.so.6")
                big = 1 << 30
                ok = libc.mallopt(_M_MMAP_THRESHOLD, big) or libc.mallopt(
                    _M_MMAP_THRESHOLD, 32 << 20
                )  # older glibc caps the mmap threshold at 32 MiB
                _malloc_tuned = bool(ok) and bool(libc.mallopt(_M_TRIM_THRESHOLD, big))
            except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
                pass
    return _malloc_tuned


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
    - on CPU, keep_freed_memory(): glibc's malloc keeps large freed blocks for reuse
      instead of page-faulting them in again at every batch (process-wide; see there).
    - compile (None: only on CUDA, where a compiler exists): `model.compile()` in place, so
      `model(x)` runs the compiled code and state_dict keys keep no `_orig_mod.` prefix. On a
      CPU the first step of each new batch size or train/eval mode pays the compile time
      (measured in docs/models.md); pass compile=True for long runs. compile=True without a
      usable compiler raises RethinkError.
    """
    device = torch.device(device)
    if device.type == "cpu":
        keep_freed_memory()
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
