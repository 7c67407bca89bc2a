"""rethink: the randomization tests of Zhang et al., "Understanding deep learning requires
rethinking generalization" (ICLR 2017), and the experiments that grew out of them.

The public API, imported lazily (so `import rethink` stays light):

    rethink.RunSpec        the spec of one run (rethink.spec)
    rethink.run            one store-backed, resumable run (rethink.runner.run)
    rethink.execute        one run, pure compute with callbacks (rethink.runner.execute)
    rethink.Store          the SQLite results store (rethink.store)
    rethink.run_sweep      a grid of runs (rethink.sweep)
    rethink.write_report   figures, tables and report.html from a store (rethink.report)
    rethink.export         a store to parquet / csv / tensorboard / mlflow (rethink.export)
    rethink.fit            the training loop: a generator of EpochRecord (rethink.train)
    rethink.data, rethink.corruptions, rethink.models, rethink.theory   the subpackages
"""

from __future__ import annotations

import importlib
from typing import Any

from rethink.errors import RethinkError

__version__ = "0.1.0"

_LAZY = {
    "RunSpec": ("rethink.spec", "RunSpec"),
    "run": ("rethink.runner", "run"),
    "execute": ("rethink.runner", "execute"),
    "Store": ("rethink.store", "Store"),
    "run_sweep": ("rethink.sweep", "run_sweep"),
    "load_sweep": ("rethink.sweep", "load_sweep"),
    "write_report": ("rethink.report", "write_report"),
    "export": ("rethink.export", "export"),
    "fit": ("rethink.train", "fit"),
    "EpochRecord": ("rethink.train", "EpochRecord"),
}
_SUBPACKAGES = (
    "data", "corruptions", "models", "theory", "report", "sweep", "spec", "store",
    "lifecycle", "dynamics", "measures", "progress", "plugins",
)  # fmt: skip

__all__ = ["RethinkError", "__version__", *_LAZY, *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"rethink.{name}")
    raise AttributeError(f"module 'rethink' has no attribute {name!r}")
