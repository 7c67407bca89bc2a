"""Memorization dynamics, example by example (issue 11).

Recording (called by the training engine / run lifecycle, which this package knows nothing
of): `example_arrays` turns the logits of a full evaluation pass over the training set into
per-example arrays; `write_run_arrays`, `write_epoch`, `truncate_records`, `load_records`
keep them in the run's SQLite store; `critical_sample_ratio` / `csr_metrics` measure the
critical sample ratio at the epochs `csr_epochs` picks, on the points `csr_sample` picks;
`threshold_samples` is the data transformation of the AUM threshold-sample rule.

Analysis (reads the store only): rethink.dynamics.scores (definitions and citations in
docs/dynamics.md) and rethink.dynamics.report (figures and the detection table).
"""

from __future__ import annotations

import importlib
from typing import Any

from rethink.dynamics._arrays import FIELDS, example_arrays, pred_dtype
from rethink.dynamics._records import (
    ensure_schema,
    has_records,
    record_runs,
    size_bytes,
    write_epoch,
    write_run_arrays,
)
from rethink.dynamics._records import load as load_records
from rethink.dynamics._records import truncate as truncate_records

__all__ = [
    "FIELDS",
    "critical_sample_ratio",
    "critical_samples",
    "csr_epochs",
    "csr_metrics",
    "csr_sample",
    "ensure_schema",
    "example_arrays",
    "has_records",
    "load_records",
    "pixel_radius",
    "pred_dtype",
    "record_runs",
    "size_bytes",
    "threshold_samples",
    "truncate_records",
    "write_epoch",
    "write_run_arrays",
]

_LAZY = {  # torch-backed: imported on first use so the store readers stay light
    "critical_sample_ratio": "rethink.dynamics._csr",
    "critical_samples": "rethink.dynamics._csr",
    "csr_epochs": "rethink.dynamics._csr",
    "csr_metrics": "rethink.dynamics._csr",
    "csr_sample": "rethink.dynamics._csr",
    "pixel_radius": "rethink.dynamics._csr",
    "threshold_samples": "rethink.dynamics._threshold",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rethink.dynamics' has no attribute {name!r}")
