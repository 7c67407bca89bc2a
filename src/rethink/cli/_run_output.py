"""People's output of `rethink run`, `runs` and `demo`: progress, epoch lines, tables, JSON."""

from __future__ import annotations

import math
import sys
import time
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
    """People's output: a rich progress bar per epoch on a terminal, plain lines otherwise.
    With --json the human lines go to stderr so stdout ends with the JSON object."""

    def __init__(self, max_epochs: int, *, quiet_stdout: bool = False) -> None:

        self.stream = sys.stderr if quiet_stdout else sys.stdout
        self.console = console_for(self.stream)
        self.live = self.console.is_terminal
        self.max_epochs = max_epochs
        self._bar = None
        self._task = None
        self._last = 0.0

    def __enter__(self) -> Output:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(
                TextColumn("epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[last]}"),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=1, epoch=0, last="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def say(self, text: str) -> None:
        self.console.print(text, markup=False)

    def progress(self, epoch: int, done: int, total: int) -> None:
        if self._bar is None:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        self._bar.update(
            self._task, completed=done, total=total, epoch=f"{epoch}/{self.max_epochs}"
        )

    def epoch(self, rec: dict[str, Any]) -> None:
        line = format_epoch(rec, self.max_epochs)
        self.say(line)
        if self._bar is not None:
            self._bar.update(self._task, last=f"train acc {100 * rec['train_acc']:.1f}%")

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


def _loss(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def format_epoch(rec: dict[str, Any], max_epochs: int) -> str:
    """One plain line for an epoch record ('-' for a split not evaluated that epoch)."""
    extra = ""
    if "changed_acc" in rec:
        extra = f"  changed {_pct(rec['changed_acc'])} unchanged {_pct(rec['unchanged_acc'])}"
    return (
        f"epoch {rec['epoch']:>3}/{max_epochs}  step {rec['step']:>6}  "
        f"train loss {_loss(rec.get('train_loss'))} acc {_pct(rec.get('train_acc'))}  "
        f"test loss {_loss(rec.get('test_loss'))} acc {_pct(rec.get('test_acc'))}  "
        f"lr {rec['lr']:.3g}  {rec['seconds']:.1f}s{extra}"
    )


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
