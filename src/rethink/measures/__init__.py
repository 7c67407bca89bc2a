"""Generalization measures of trained runs, scored against the generalization gap.

    >>> from rethink import measures
    >>> rows = measures.compute("runs.db")              # doctest: +SKIP
    >>> scores = measures.score("runs.db")              # doctest: +SKIP
    >>> measures.write_measures_report("runs.db", "report/")   # doctest: +SKIP

`compute` measures every finished run of a store that has a final checkpoint (size and
norms, margins, flatness, optimization; `names()` lists them) on a fixed, seeded sample of
its training data and keeps the values in the store's `measures` table; `score` ranks them
by Kendall's tau with the gap, Jiang et al.'s granulated tau and the PGDL conditional mutual
information, with random-label runs included and excluded. docs/measures.md gives every
formula, unit and citation.
"""

from typing import Any

# Lazy (PEP 562): importing rethink.measures (e.g. rethink.report asking whether a store has a
# measures table) does not import torch; the names load on first use.
_NAMES = {
    "GROUPS": "_compute", "MEASURES": "_compute", "SAMPLE": "_compute", "SEED": "_compute",
    "compute": "_compute", "names": "_compute", "score": "_compute",
    "write_measures_report": "_report",
    "conditional_mi": "_score", "granulated_tau": "_score",
    "hyperparameter_axes": "_score", "kendall_tau": "_score",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'rethink.measures' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"rethink.measures.{_NAMES[name]}"), name)


__all__ = [
    "GROUPS",
    "MEASURES",
    "SAMPLE",
    "SEED",
    "compute",
    "conditional_mi",
    "granulated_tau",
    "hyperparameter_axes",
    "kendall_tau",
    "names",
    "score",
    "write_measures_report",
]
