"""Choosing the compute device: auto picks cuda, then mps, then cpu."""

from __future__ import annotations

import torch

from rethink.errors import RethinkError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch.device for `name` (auto | cpu | cuda | cuda:N | mps); RethinkError if absent."""
    if isinstance(name, torch.device):
        return name
    name = str(name).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.partition(":")[0]
    if kind not in DEVICES:
        raise RethinkError(f"unknown device '{name}'; choose one of: {', '.join(DEVICES)}.")
    if kind == "cuda" and not torch.cuda.is_available():
        raise RethinkError("--device cuda was asked for, but this torch sees no CUDA GPU.")
    if kind == "mps" and not _mps_available():
        raise RethinkError("--device mps was asked for, but this torch has no MPS backend.")
    try:
        return torch.device(name)
    except RuntimeError:
        raise RethinkError(f"'{name}' is not a valid device name.") from None


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())
