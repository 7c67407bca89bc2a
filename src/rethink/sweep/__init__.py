"""Sweeps: a base spec plus axes expand into runs; executors compute them, the driver stores them.

    >>> from rethink import sweep
    >>> plan = sweep.load_sweep("presets/fig1a.toml", scale="smoke")
    >>> summary = sweep.run_sweep(plan, "runs/fig1a.db", jobs=2)   # or backend="ray"
    >>> summary.finished, summary.skipped

See docs/sweeps.md for the file format, resuming and the Ray backend.
"""

from rethink.sweep._driver import SweepSummary, default_store_path, run_sweep
from rethink.sweep._plan import (
    PRESET_DIR,
    PlannedRun,
    SweepPlan,
    expand,
    load_sweep,
    plan_from_dict,
    preset_path,
)

__all__ = [
    "PRESET_DIR",
    "PlannedRun",
    "SweepPlan",
    "SweepSummary",
    "default_store_path",
    "expand",
    "load_sweep",
    "plan_from_dict",
    "preset_path",
    "run_sweep",
]
