"""Progress displays for a run and a sweep: long work is never silent.

Three renderings of the same events, chosen by `mode`:

- "terminal": a rich progress bar (epochs of a run, runs of a sweep) with an ETA;
- "plain": one line per epoch of a run; for a sweep, one line per started, resumed, skipped
  or finished run, and a run's epoch line whenever a minute has passed since that run's last
  line (for nohup, CI and log files, where a bar would be noise);
- "notebook": tqdm.auto (a widget in Jupyter);
- "quiet": nothing.

"auto" (the default) picks "notebook" inside a Jupyter kernel, "terminal" when the stream is
a TTY, "plain" otherwise. The stream defaults to stderr, so stdout stays free for --json.

    >>> from rethink.progress import RunProgress
    >>> with RunProgress("mlp-1x512 random labels", max_epochs=200) as p:  # doctest: +SKIP
    ...     p.start(resumed_from=None)
    ...     for record in records:          # each record as the engine yields it
    ...         p.epoch(record)
    ...     p.end("finished", result)

ETAs: a run's is the mean wall seconds of the epochs trained so far (in this process) times
the epochs left to `max_epochs` (the until-fit cap: a run that fits earlier ends sooner, so
the ETA is an upper bound for until-fit runs). A sweep's is the wall time since its first
run started divided by the runs finished since, times the runs left (skipped runs are not
counted as work), which accounts for parallel workers. See docs/progress.md.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:  # the engine imports torch; the displays never need it
    from rethink.train import EpochRecord

MODES = ("auto", "terminal", "plain", "notebook", "quiet")


class EpochRow(TypedDict, total=False):
    """An epoch as a row (`rethink.train.EpochRecord.metrics()`, a store's epochs row): what
    the displays read. Accuracies are fractions; test_loss / test_acc are None on epochs
    where the test set was not evaluated; seconds is this epoch's wall time."""

    epoch: int
    step: int
    train_loss: float
    train_acc: float
    test_loss: float | None
    test_acc: float | None
    lr: float
    seconds: float


OnEpoch = Callable[["EpochRecord"], None]
"""The callback type of `rethink.run(..., on_epoch=...)`: called with each epoch's
`rethink.train.EpochRecord` (attributes epoch, step, train_loss, train_acc, test_loss,
test_acc, lr, seconds, fit, best_test_acc, ...; `.metrics()` gives the row as a dict) as soon
as the epoch ends and the store holds it. Epoch 0 is the evaluation before training."""


def as_row(record: Any) -> dict[str, Any]:
    """An epoch as a dict: a mapping as it is, an EpochRecord through its .metrics()."""
    if isinstance(record, Mapping):
        return dict(record)
    metrics = getattr(record, "metrics", None)
    if callable(metrics):
        return dict(metrics())
    return dict(vars(record))


# ---- formatting ---------------------------------------------------------------------------
def format_duration(seconds: float | None) -> str:
    """'-' for unknown, else '4.2s', '45s', '3m05s', '2h07m'."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _pct(v: Any) -> str:
    return "-" if not _finite(v) else f"{100 * float(v):.2f}%"


def _num(v: Any) -> str:
    return "-" if not _finite(v) else f"{float(v):.4f}"


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def run_eta(epoch_seconds: list[float], epochs_left: int) -> float | None:
    """Seconds left: mean measured epoch time x epochs left; None before any measurement."""
    if epochs_left <= 0:
        return 0.0
    measured = [s for s in epoch_seconds if _finite(s)]
    if not measured:
        return None
    return sum(measured) / len(measured) * epochs_left


def schedule_eta(running: list[float], pending: int, per_run: float | None, slots: int) -> float:
    """Seconds until the last run ends: `slots` workers, each busy for one of the `running`
    runs' seconds left (a free worker: 0), take the `pending` runs of `per_run` seconds each,
    the next one going to the first worker free (as a sweep's workers do)."""
    free = sorted(list(running) + [0.0] * max(0, slots - len(running)))
    for _ in range(max(0, pending)):
        if per_run is None:
            raise ValueError("pending runs need a per-run estimate")
        free[0] += per_run
        free.sort()
    return max(free, default=0.0)


def _in_notebook() -> bool:
    if "IPython" not in sys.modules:  # never import IPython just to look
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def resolve_mode(mode: str, stream: IO[str]) -> str:
    """The concrete mode for `mode` ("auto" decided from the environment and `stream`)."""
    if mode not in MODES:
        from rethink.errors import RethinkError

        raise RethinkError(f"unknown progress mode {mode!r}; use one of {', '.join(MODES)}.")
    if mode != "auto":
        return mode
    if _in_notebook():
        return "notebook"
    isatty = getattr(stream, "isatty", None)
    return "terminal" if isatty is not None and isatty() else "plain"


def _console(stream: IO[str], mode: str):
    from rich.console import Console

    return Console(file=stream, force_terminal=mode == "terminal", highlight=False)


class _Display:
    """Shared plumbing: the stream, the concrete mode, context-manager behaviour."""

    def __init__(self, stream: IO[str] | None, mode: str) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.mode = resolve_mode(mode, self.stream)
        self._closed = False

    def _line(self, text: str) -> None:
        if self.mode == "plain":
            self.stream.write(text + "\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # overridden
        self._closed = True


# ---- one run ------------------------------------------------------------------------------
class RunProgress(_Display):
    """Progress of one run: `start`, then `epoch` per record, then `end`; `close` always."""

    def __init__(
        self,
        label: str,
        max_epochs: int,
        *,
        stream: IO[str] | None = None,
        mode: str = "auto",
    ) -> None:
        super().__init__(stream, mode)
        self.label = label
        self.max_epochs = int(max_epochs)
        self.epoch_seconds: list[float] = []
        self._bar = None
        self._task = None

    def start(self, resumed_from: int | None = None) -> None:
        """The run begins (fresh, or resumed after epoch `resumed_from`)."""
        done = resumed_from or 0
        how = f"resumed from epoch {resumed_from}" if resumed_from is not None else "started"
        self._line(f"{self.label}: {how}, at most {self.max_epochs} epochs")
        if self.mode == "terminal":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("epochs  {task.fields[metrics]}  eta {task.fields[eta]}"),
                console=_console(self.stream, self.mode),
                transient=False,
            )
            self._bar.start()
            if resumed_from is not None:
                self._bar.console.print(f"{self.label}: {how}", markup=False)
            self._task = self._bar.add_task(
                self.label, total=self.max_epochs, completed=done, metrics="", eta="-"
            )
        elif self.mode == "notebook":
            from tqdm.auto import tqdm

            kw = {} if self.stream is sys.stderr else {"file": self.stream}
            self._bar = tqdm(
                total=self.max_epochs, initial=done, desc=self.label, unit="epoch", **kw
            )

    def eta(self, epoch: int) -> float | None:
        """Seconds left after `epoch`, from the epochs measured so far."""
        return run_eta(self.epoch_seconds, self.max_epochs - epoch)

    def epoch(self, record: EpochRow | EpochRecord) -> None:
        """One finished epoch: an EpochRecord as the engine yields it, or its row (a dict)."""
        record = as_row(record)
        epoch = int(record["epoch"])
        if epoch > 0 and _finite(record.get("seconds")):  # epoch 0 only evaluates
            self.epoch_seconds.append(float(record["seconds"]))
        eta = format_duration(self.eta(epoch))
        if self.mode == "plain":
            self._line(self.format_epoch(record, eta))
        elif self.mode == "terminal" and self._bar is not None:
            self._bar.update(self._task, completed=epoch, metrics=_short(record), eta=eta)
        elif self.mode == "notebook" and self._bar is not None:
            self._bar.n = epoch
            self._bar.set_postfix_str(f"{_short(record)} eta {eta}", refresh=True)

    def format_epoch(self, record: dict[str, Any], eta: str) -> str:
        """The plain line of one epoch."""
        return (
            f"{self.label}: epoch {record['epoch']}/{self.max_epochs}"
            f"  train loss {_num(record.get('train_loss'))} acc {_pct(record.get('train_acc'))}"
            f"  test loss {_num(record.get('test_loss'))} acc {_pct(record.get('test_acc'))}"
            f"  {format_duration(record.get('seconds'))}  eta {eta}"
        )

    def end(self, status: str, result: dict[str, Any]) -> None:
        """The run ended with `status` and its result row."""
        text = f"{self.label}: {status}, {format_result(result)}"
        if self.mode == "plain":
            self._line(text)
        elif self.mode == "terminal" and self._bar is not None:
            epochs = result.get("epochs")
            if _finite(epochs):
                self._bar.update(self._task, completed=int(epochs), eta=format_duration(0))
            self._bar.console.print(text, markup=False)
        elif self.mode == "notebook" and self._bar is not None:
            self._bar.set_postfix_str(f"{status}", refresh=True)

    def close(self) -> None:
        if self._bar is not None and not self._closed:
            if self.mode == "terminal":
                self._bar.stop()
            else:
                self._bar.close()
        super().close()


def _short(record: dict[str, Any]) -> str:
    return f"train acc {_pct(record.get('train_acc'))} test acc {_pct(record.get('test_acc'))}"


def format_result(result: dict[str, Any]) -> str:
    """'57 epochs, fit at epoch 52, test acc 10.12%, 3m12s' from a result row."""
    fit = result.get("epochs_to_fit")
    return (
        f"{result.get('epochs', '-')} epochs, "
        + (f"fit at epoch {fit}" if fit is not None else "not fit")
        + f", test acc {_pct(result.get('test_acc'))}, {format_duration(result.get('seconds'))}"
    )


def run_progress(
    progress: bool | str | RunProgress | None,
    label: str,
    max_epochs: int,
    *,
    stream: IO[str] | None = None,
) -> RunProgress:
    """The display behind `rethink.run(..., progress=...)`: True -> "auto", False or None ->
    "quiet", a mode name -> that mode, a RunProgress -> itself."""
    if isinstance(progress, RunProgress):
        return progress
    if progress is True:
        mode = "auto"
    elif progress is False or progress is None:
        mode = "quiet"
    else:
        mode = str(progress)
    return RunProgress(label, max_epochs, stream=stream, mode=mode)


# ---- a sweep ------------------------------------------------------------------------------
class SweepProgress(_Display):
    """Progress of a sweep of `total` runs: skipped / started / epoch / finished events."""

    def __init__(
        self,
        name: str,
        total: int,
        *,
        stream: IO[str] | None = None,
        mode: str = "auto",
        clock: Callable[[], float] = time.monotonic,
        heartbeat: float = 60.0,
    ) -> None:
        super().__init__(stream, mode)
        self.name = name
        self.total = int(total)
        self.clock = clock
        # plain mode: a run's epoch line at most every `heartbeat` seconds, so a sweep of
        # hour-long runs is never silent in a log and one of many tiny runs is not a flood
        self.heartbeat = float(heartbeat)
        self._last_line: dict[str, float] = {}
        self.n_skipped = 0
        self.n_finished = 0
        self.n_interrupted = 0
        self._bar = None
        self._task = None
        self._run_tasks: dict[str, Any] = {}
        self._labels: dict[str, str] = {}
        self._max_epochs: dict[str, int | None] = {}
        self._epoch_seconds: dict[str, list[float]] = {}  # epochs trained in this process
        self._resumed_from: dict[str, int] = {}
        self._epoch: dict[str, int] = {}  # a running run's latest epoch
        self._started_at: dict[str, float] = {}
        self._run_costs: list[float] = []  # a whole finished run's seconds, estimated
        self._slots = 1  # the most runs seen running at once: the sweep's workers

    def _open(self) -> None:
        """Draw the bar at the first event, not before: an error raised before any run
        starts (bad input) then prints its sentence alone, with no empty bar above it."""
        if self._bar is not None or self._closed:
            return
        if self.mode == "terminal":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                console=_console(self.stream, self.mode),
            )
            self._bar.start()
            self._task = self._bar.add_task(f"sweep {self.name}", total=self.total, info="runs")
        elif self.mode == "notebook":
            from tqdm.auto import tqdm

            kw = {} if self.stream is sys.stderr else {"file": self.stream}
            self._bar = tqdm(total=self.total, desc=f"sweep {self.name}", unit="run", **kw)

    @property
    def done(self) -> int:
        return self.n_skipped + self.n_finished

    def eta(self) -> float | None:
        """Seconds until the sweep's last run ends: each running run's ETA (its cap's epochs
        left x its mean epoch here), then the runs not started, each as long as the finished
        runs were (their wall time plus, for a resumed one, its earlier epochs at its mean
        epoch) or, before any finished, as a running run's cap x its mean epoch, handed to
        the workers (the most runs seen at once) as they free up. None until that is known;
        for until-fit runs it is an upper bound."""
        left = self.total - self.done
        if left <= 0:
            return 0.0
        running = list(self._epoch_seconds)
        etas = [self._run_left(r) for r in running]
        pending = left - len(running)
        if self._run_costs:
            per_run = sum(self._run_costs) / len(self._run_costs)
        else:  # a fresh run as long as a running run's whole cap
            whole = [run_eta(self._epoch_seconds[r], self._max_epochs.get(r) or 0) for r in running]
            whole = [w for w in whole if w]
            per_run = sum(whole) / len(whole) if whole else None
        if any(e is None for e in etas) or (pending > 0 and per_run is None):
            return None
        return schedule_eta(etas, pending, per_run, self._slots)

    def _run_left(self, run_id: str) -> float | None:
        """A running run's seconds left: its mean epoch here x epochs left to its cap; None
        without a cap or before its first epoch here."""
        cap = self._max_epochs.get(run_id)
        if not cap:
            return None
        epoch = self._epoch.get(run_id, self._resumed_from.get(run_id, 0))
        return run_eta(self._epoch_seconds.get(run_id) or [], cap - int(epoch))

    def _say(self, text: str) -> None:
        self._open()
        if self.mode == "plain":
            self._line(text)
        elif self.mode == "terminal":
            self._bar.console.print(text, markup=False)
        elif self.mode == "notebook":
            self._bar.write(text)

    def _advance(self) -> None:
        self._open()
        eta = format_duration(self.eta())
        if self.mode == "terminal":
            self._bar.update(self._task, completed=self.done, info=f"runs  eta {eta}")
        elif self.mode == "notebook":
            self._bar.n = self.done
            self._bar.set_postfix_str(f"eta {eta}", refresh=True)

    def skipped(self, run_label: str, run_id: str) -> None:
        """A run already done in the store (not run again)."""
        self.n_skipped += 1
        self._say(f"{self.name}: skipped {run_id} ({run_label}), already done")
        self._advance()

    def started(
        self,
        run_label: str,
        run_id: str,
        resumed_from: int | None = None,
        max_epochs: int | None = None,
    ) -> None:
        """A run begins (fresh, or resumed after epoch `resumed_from`). With `max_epochs`
        (the run's cap), its plain epoch lines read 'epoch 36/100 ... eta 2h09m'."""
        self._open()
        if resumed_from is not None:
            self._say(f"{self.name}: resumed {run_id} ({run_label}) from epoch {resumed_from}")
        else:
            self._say(f"{self.name}: started {run_id} ({run_label})")
        self._labels[run_id] = run_label
        self._last_line[run_id] = self.clock()
        self._max_epochs[run_id] = max_epochs
        self._epoch_seconds[run_id] = []
        self._resumed_from[run_id] = int(resumed_from or 0)
        self._started_at[run_id] = self.clock()
        self._slots = max(self._slots, len(self._epoch_seconds))
        if self.mode == "terminal":
            self._run_tasks[run_id] = self._bar.add_task(f"  {run_label}"[:48], total=None, info="")

    def epoch(self, run_id: str, record: EpochRow | EpochRecord) -> None:
        """A run's epoch ended: on a terminal, under the sweep's bar; in plain mode, a line
        when `heartbeat` seconds have passed since the run's last line."""
        if self.mode == "quiet":
            return
        record = as_row(record)
        seconds = self._epoch_seconds.get(run_id)
        if seconds is not None and record.get("epoch", 0) > 0:
            seconds.append(record.get("seconds"))  # epoch 0 is an evaluation, not an epoch
            self._epoch[run_id] = int(record["epoch"])
        if self.mode == "notebook":
            return
        if self.mode == "terminal":
            task = self._run_tasks.get(run_id)
            if task is not None:
                where, tail = self._where(run_id, record["epoch"])
                self._bar.update(task, info=f"{where}  {_short(record)}{tail}")
            if self.total > 1:
                self._advance()  # the sweep's ETA follows its runs' epochs
            return
        now = self.clock()
        if now - self._last_line.get(run_id, -math.inf) < self.heartbeat:
            return
        self._last_line[run_id] = now
        label = self._labels.get(run_id)
        where, tail = self._where(run_id, record["epoch"])
        self._say(
            f"{self.name}: {run_id}"
            + (f" ({label})" if label else "")
            + f" {where}  {_short(record)}"
            + f"  {format_duration(record.get('seconds'))}"
            + tail
        )

    def _where(self, run_id: str, epoch: int) -> tuple[str, str]:
        """('epoch 36/100', '  eta 2h09m') with the run's cap known, else ('epoch 36', '');
        in a sweep of more than one run, the sweep's ETA follows ('  eta 2h09m, sweep 6h')."""
        cap = self._max_epochs.get(run_id)
        if not cap:
            return f"epoch {epoch}", ""
        tail = f"  eta {format_duration(self._run_left(run_id))}"
        if self.total > 1 and self.mode == "plain":
            tail += f", sweep {format_duration(self.eta())}"
        return f"epoch {epoch}/{cap}", tail

    def finished(
        self, run_label: str, run_id: str, status: str, result: dict[str, Any] | None
    ) -> None:
        """A run ended with `status`; result has epochs, epochs_to_fit, test_acc, seconds.

        An interrupted run (Ctrl-C, a time budget) is not done: it resumes from its last
        checkpoint when the sweep runs again, so it counts neither towards [done/total] nor
        towards the ETA's finished runs, and its line carries no sweep ETA (the sweep is
        stopping)."""
        interrupted = status == "interrupted"
        seconds = [x for x in self._epoch_seconds.pop(run_id, None) or [] if _finite(x)]
        began = self._started_at.pop(run_id, None)
        earlier = self._resumed_from.pop(run_id, 0)
        if interrupted:
            self.n_interrupted += 1
        else:
            self.n_finished += 1
            # its wall time here, plus its epochs before a resume; a failed run (often at its
            # start) says nothing about how long the others take
            if began is not None and status != "failed":
                cost = self.clock() - began
                if earlier and seconds:
                    cost += earlier * sum(seconds) / len(seconds)
                self._run_costs.append(cost)
        self._last_line.pop(run_id, None)
        self._labels.pop(run_id, None)
        self._max_epochs.pop(run_id, None)
        self._epoch.pop(run_id, None)
        task = self._run_tasks.pop(run_id, None)
        if task is not None:
            self._bar.remove_task(task)
        head = f"{self.name} [{self.done}/{self.total}]: {run_id} ({run_label}) {status}, "
        if interrupted:
            # a time budget reports the run's epochs so far (its last one checkpointed);
            # Ctrl-C reports none: either way the run resumes from its last checkpoint
            epochs = (result or {}).get("epochs")
            after = f"after {epochs} epochs, " if isinstance(epochs, int) else ""
            self._say(head + after + "resumes from its last checkpoint")
            return
        # a run that failed before its first epoch has no result; the summary gives its error
        what = format_result(result) if result else "no result (its error follows the sweep)"
        self._say(head + f"{what}; sweep eta {format_duration(self.eta())}")
        self._advance()

    def close(self) -> None:
        if self._bar is not None and not self._closed:
            if self.mode == "terminal":
                self._bar.stop()
            else:
                self._bar.close()
        super().close()


__all__ = [
    "MODES",
    "EpochRow",
    "OnEpoch",
    "RunProgress",
    "SweepProgress",
    "as_row",
    "format_duration",
    "format_result",
    "resolve_mode",
    "run_eta",
    "run_progress",
    "schedule_eta",
]
