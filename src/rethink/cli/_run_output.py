"""People's output of `rethink run`, `runs` and `demo`: progress, epoch lines, tables, JSON."""

from __future__ import annotations

import math
import sys
from typing import Any

_JSON_KEYS = (
    "status",
    "epochs",
    "epochs_to_fit",
    "steps_to_fit",
    "train_acc",
    "test_acc",
    "best_test_acc",
    "train_loss",
    "test_loss",
    "params",
    "seconds",
)


def json_result(result: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The --json object of one run: run_id and the result's main keys (NaN -> null)."""
    out: dict[str, Any] = {"run_id": run_id}
    for k in _JSON_KEYS:
        v = result.get(k)
        out[k] = None if isinstance(v, float) and not math.isfinite(v) else v
    for k in ("changed_acc", "unchanged_acc", "diverged_epoch", "skipped"):
        if result.get(k) is not None:
            out[k] = result[k]
    return out


class Output:
    """People's output of `rethink run`: lines and the summary table (the per-epoch display is
    rethink.progress.RunProgress). With --json they go to stderr so stdout ends with the JSON
    object."""

    def __init__(self, max_epochs: int, *, quiet_stdout: bool = False) -> None:
        self.stream = sys.stderr if quiet_stdout else sys.stdout
        self.console = console_for(self.stream)
        self.max_epochs = max_epochs

    def say(self, text: str) -> None:
        self.console.print(text, markup=False)

    def summary(self, rows: list[tuple[str, dict[str, Any]]], title: str = "result") -> None:
        self.console.print(summary_table(rows, title))


def console_for(stream):
    """A rich Console on `stream`; wide enough for the tables when it is not a terminal."""
    from rich.console import Console

    console = Console(file=stream, highlight=False)
    if not console.is_terminal:
        console = Console(file=stream, highlight=False, width=160)
    return console


def _pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}%"


def summary_table(rows: list[tuple[str, dict[str, Any]]], title: str = "result"):
    """A rich Table: one row per (label, result)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("run", overflow="fold", min_width=8)
    for col in ("status", "epochs", "fit epoch", "train acc", "test acc", "best test", "seconds"):
        table.add_column(col, justify="left" if col == "status" else "right")
    for label, r in rows:
        fit = r.get("epochs_to_fit")
        table.add_row(
            label,
            str(r.get("status")),
            str(r.get("epochs")),
            "never" if fit is None else str(fit),
            _pct(r.get("train_acc")),
            _pct(r.get("test_acc")),
            _pct(r.get("best_test_acc")),
            "-" if r.get("seconds") is None else f"{r['seconds']:.1f}",
        )
    return table
