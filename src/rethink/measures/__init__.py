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

from rethink.measures._compute import GROUPS, MEASURES, SAMPLE, SEED, compute, names, score
from rethink.measures._report import write_measures_report
from rethink.measures._score import (
    conditional_mi,
    granulated_tau,
    hyperparameter_axes,
    kendall_tau,
)

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
