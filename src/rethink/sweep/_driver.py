"""The sweep driver: the one process that writes the store while executors compute.

Every expanded spec is checked (data, model, corruption) before the first run starts. For each
planned run: skip it if the store has it finished or diverged; otherwise record it through
rethink.lifecycle.Recorder, exactly as `rethink run` does (the run's lock, resume from a
usable checkpoint or start over, every epoch, checkpoint and result written as it comes back).
A failing run is recorded as failed and the rest go on; a run another process is training is
left to it (reported, not written). An interrupt (Ctrl-C, SIGTERM) marks the runs in flight as
interrupted; running the same sweep again resumes them. A SIGKILL leaves them 'running', which
the next start treats the same way. A time budget (`stop_after`) stops each run in flight at
its first epoch end past the budget, that epoch checkpointed (status interrupted: nothing
computed is lost), and starts no run after it (those stay pending, with nothing written).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rethink.errors import RethinkError
from rethink.lifecycle import Recorder, stderr_notice
from rethink.store import DONE, Store
from rethink.sweep._executors import SKIP, InlineExecutor, LocalExecutor, RayExecutor
from rethink.sweep._plan import SweepPlan
from rethink.sweep._worker import DEFAULT_EXECUTE


@dataclass
class SweepSummary:
    """What a sweep did: counts by outcome and each run's final status."""

    sweep: str
    total: int
    skipped: int = 0
    finished: int = 0
    diverged: int = 0
    failed: int = 0
    interrupted: int = 0
    pending: int = 0  # not started: the time budget was spent first
    seconds: float = 0.0
    statuses: dict[str, str] = field(default_factory=dict)  # run_id -> status
    errors: dict[str, str] = field(default_factory=dict)  # run_id -> one line

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _Writer:
    """Turns worker messages into store writes through one Recorder per run in flight."""

    def __init__(
        self,
        store: Store,
        plan: SweepPlan,
        on_event: Callable | None,
        notice=stderr_notice,
        deadline: float | None = None,
    ):
        self.store, self.plan, self.on_event, self.notice = store, plan, on_event, notice
        self.deadline = deadline
        self.specs = {r.run_id: r for r in plan.runs}
        self.active: dict[str, Recorder] = {}
        self.final: dict[str, str] = {}
        self.errors: dict[str, str] = {}

    def prepare(self, run_id: str) -> Any:
        """Begin the run; returns its checkpoint path to resume from, None, or SKIP (another
        process holds the run, or the time budget is spent: nothing is written for it)."""
        if self.deadline is not None and time.time() >= self.deadline:
            self.final[run_id] = "pending"
            return SKIP
        run = self.specs[run_id]
        rec = Recorder(
            self.store, run.spec.normalized(), sweep=self.plan.name, label=run.label,
            notice=self.notice,
        )  # fmt: skip
        try:
            state = rec.begin()
        except RethinkError as err:
            if "is being trained by" not in str(err):
                raise
            self.errors[run_id] = str(err)
            self.final[run_id] = "failed"
            self._event("end", run_id, status="failed")
            return SKIP
        self.active[run_id] = rec
        self._event("start", run_id, resumed_from=rec.resumed_from)
        return str(rec.ckpt) if state is not None else None

    def handle(self, msg: tuple) -> None:
        kind, run_id = msg[0], msg[1]
        rec = self.active.get(run_id)
        if kind == "start":
            return
        if rec is None:  # a run this driver does not hold (already ended)
            if kind == "error":
                self.errors.setdefault(run_id, str(msg[2]))
            return
        if kind == "setup":
            rec.started(msg[2], msg[3])
        elif kind == "restart":
            rec.restart(str(msg[2]))
        elif kind == "resume":  # a lost task handed out again from its last checkpoint
            rec.rewind(int(msg[2]), str(msg[3]))
        elif kind == "epoch":
            rec.epoch(msg[2], msg[3] if len(msg) > 3 else None)
            self._event("epoch", run_id, record=msg[2])
        elif kind == "ckpt":
            rec.checkpoint(msg[3])
        elif kind == "done":
            result = dict(msg[2])
            result["resumed_from"] = rec.resumed_from
            status = result.get("status")
            try:
                rec.finish(status, result)
            except RethinkError as err:  # an unknown status: recorded as failed by finish
                self.errors[run_id] = str(err)
                status = "failed"
            self._end(run_id, status, result)
        elif kind == "error":
            rec.fail(str(msg[2]))
            self.errors[run_id] = str(msg[2])
            self._end(run_id, "failed")

    def interrupt(self, why: str = "the sweep was interrupted") -> None:
        for run_id, rec in list(self.active.items()):
            try:
                rec.interrupt(why)
            except Exception:  # the store cannot take it (a full disk): the next start resumes
                rec.close()
            self._end(run_id, "interrupted")

    def close(self) -> None:
        for rec in self.active.values():
            rec.close()

    def _end(self, run_id: str, status: str, result: dict | None = None) -> None:
        self.active.pop(run_id, None)
        self.final[run_id] = status
        self._event("end", run_id, status=status, result=result or {})

    def _event(self, kind: str, run_id: str, **kw: Any) -> None:
        if self.on_event:
            self.on_event(kind, self.specs[run_id], **kw)


def run_sweep(
    plan: SweepPlan,
    store: Store | str | os.PathLike,
    *,
    jobs: int = 1,
    backend: str = "local",
    address: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    execute: str = DEFAULT_EXECUTE,
    on_event: Callable[..., None] | None = None,
    notice: Callable[[str], None] = stderr_notice,
    check: bool = True,
    threads: int | None = None,
    stop_after: float | None = None,
) -> SweepSummary:
    """Run every unfinished run of `plan`, writing `store`; returns the summary.

    `on_event(kind, planned_run, **info)` sees 'start' (resumed_from), 'epoch' (record) and
    'end' (status) for progress displays. KeyboardInterrupt propagates after the runs in
    flight are marked interrupted. `check`: set up every distinct data / model combination
    of the unfinished runs before the first one starts (bad input then writes nothing).
    `stop_after`: a time budget in seconds from this call; each run in flight stops at its
    first epoch end after it, checkpointed and marked interrupted, and no run starts after it
    (counted as `pending`); running the sweep again resumes.
    """
    if jobs < 1:
        raise RethinkError("--jobs must be at least 1.")
    from rethink.runner import check_threads

    check_threads(threads)
    if backend not in ("local", "ray"):
        raise RethinkError(f"unknown backend '{backend}'; choose local or ray.")
    if address and backend != "ray":
        raise RethinkError("--address is only for --backend ray.")
    from rethink.lifecycle import deadline_after

    deadline = deadline_after(stop_after)
    own = not isinstance(store, Store)
    t0 = time.time()
    if check and own:  # every check before the store is opened, locked or created
        from rethink.store import statuses

        done = {rid for rid, status in statuses(store).items() if status in DONE}
        _check_unfinished(plan, done, data_dir, device)
    st = Store(store) if own else store
    try:
        unlock = _lock(st.path)
    except BaseException:
        if own:
            st.close()
        raise
    writer = None
    try:
        done = {r["run_id"] for r in st.runs() if r["status"] in DONE}
        summary = SweepSummary(plan.name, len(plan))
        todo = []
        for run in plan.runs:
            if run.run_id in done:
                summary.skipped += 1
                summary.statuses[run.run_id] = "skipped"
                if on_event:
                    on_event("skip", run)
            else:
                todo.append((run.run_id, run.spec.normalized().to_dict()))
        if check and not own:
            _check_unfinished(plan, done, data_dir, device)
        opts: dict[str, Any] = {"execute": execute, "data_dir": data_dir, "device": device}
        if threads is not None:  # torch threads per run (default: all cores / jobs)
            opts["threads"] = threads
        if deadline is not None:
            opts["deadline"] = deadline
        if backend == "ray":
            executor: Any = RayExecutor(jobs, address=address, **opts)
        elif jobs == 1:
            executor = InlineExecutor(**opts)
        else:
            executor = LocalExecutor(jobs, **opts)
        writer = _Writer(st, plan, on_event, notice, deadline)
        restore = _sigterm_as_interrupt()
        try:
            if todo:
                executor.run(todo, writer.prepare, writer.handle)
        except KeyboardInterrupt:
            writer.interrupt()
            raise
        except RethinkError:  # a full disk, a damaged store: the runs in flight stop
            writer.interrupt("the sweep stopped on an error")
            raise
        finally:
            restore()
        for run_id, status in writer.final.items():
            summary.statuses[run_id] = status
            setattr(summary, status, getattr(summary, status) + 1)
        summary.errors = writer.errors
        summary.seconds = time.time() - t0
        return summary
    finally:
        if writer is not None:
            writer.close()
        unlock()
        if own:
            st.close()


def _check_unfinished(plan: SweepPlan, done: set[str], data_dir, device) -> None:
    """Set up every run of `plan` that is not in `done` (finished or diverged)."""
    from rethink.runner import check as check_specs

    todo = [r.spec for r in plan.runs if r.run_id not in done]
    if todo:
        check_specs(todo, data_dir=data_dir, device=device)


def _lock(path: Path) -> Callable[[], None]:
    """One sweep driver per store: an exclusive lock on <store>.lock (freed even by SIGKILL)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return lambda: None
    f = open(path.with_name(path.name + ".lock"), "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise RethinkError(
            f"another sweep is writing {path}; wait for it or stop it first."
        ) from None

    def unlock() -> None:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()

    return unlock


def _sigterm_as_interrupt() -> Callable[[], None]:
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, raise_interrupt)
    return lambda: signal.signal(signal.SIGTERM, old)


def default_store_path(plan: SweepPlan) -> Path:
    """Where a sweep writes when no --store is given: runs/<sweep name>.db."""
    return Path("runs") / f"{plan.name}.db"
