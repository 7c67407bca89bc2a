"""Reports from a results store: the paper's figures and tables, and one HTML page.

    >>> from rethink.report import write_report
    >>> paths = write_report("runs/fig1bc-cpu.db", "report/")   # doctest: +SKIP

For each sweep in the store it writes what the runs support: Fig. 1a (training loss vs steps
per corruption), Fig. 1b/1c (time to fit and test error vs label corruption p), test-accuracy
curves with the best-so-far shaded (Fig. 2), and a results table with the paper's numbers
beside ours (Markdown, LaTeX, CSV); then report.html with everything inlined. The report
reads the store only and imports nothing from training. See docs/report.md.
"""

from rethink.report._load import load_frames
from rethink.report._tables import (
    Table,
    fig1a_table,
    fig1bc_table,
    results_table,
    to_latex,
    to_markdown,
    write_table,
)
from rethink.report._write import write_report

__all__ = [
    "Table",
    "fig1a_table",
    "fig1bc_table",
    "load_frames",
    "results_table",
    "to_latex",
    "to_markdown",
    "write_report",
    "write_table",
]
