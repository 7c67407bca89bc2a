"""The sweep driver: the one process that writes the store while executors compute.

For each planned run: skip it if the store has it finished or diverged; otherwise record it as
running, resume it from its last checkpoint (epochs after the checkpoint are dropped, to be
recomputed) and write every epoch, checkpoint and result that comes back. A failing run is
recorded as failed and the rest go on. An interrupt (Ctrl-C, SIGTERM) marks the runs in flight
as interrupted; running the same sweep again resumes them. A SIGKILL leaves them 'running',
which the next start treats the same way.
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
from rethink.store import DONE, Store
from rethink.sweep._executors import InlineExecutor, LocalExecutor, RayExecutor
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
    seconds: float = 0.0
    statuses: dict[str, str] = field(default_factory=dict)  # run_id -> status
    errors: dict[str, str] = field(default_factory=dict)  # run_id -> one line

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _Writer:
    """Turns worker messages into store writes; tracks progress."""

    def __init__(self, store: Store, plan: SweepPlan, on_event: Callable | None):
        self.store, self.plan, self.on_event = store, plan, on_event
        self.specs = {r.run_id: r for r in plan.runs}
        self.active: set[str] = set()
        self.final: dict[str, str] = {}
        self.errors: dict[str, str] = {}

    def prepare(self, run_id: str) -> str | None:
        """Mark the run running; returns its checkpoint path if it has one."""
        run = self.specs[run_id]
        ckpt = self.store.checkpoint_path(run_id)
        # The same rules as `rethink run`: a missing, torn, foreign or final checkpoint
        # means the run starts over.
        from rethink.runner import load_checkpoint

        state = load_checkpoint(ckpt, run_id)
        epoch, resume = (int(state["epoch"]), str(ckpt)) if state else (-1, None)
        self.store.truncate_epochs(run_id, epoch)
        self.store.begin_run(
            run_id, run.spec.normalized().to_dict(), sweep=self.plan.name, label=run.label
        )
        self.active.add(run_id)
        self._event("start", run_id, resumed_from=epoch if resume else None)
        return resume

    def handle(self, msg: tuple) -> None:
        kind, run_id = msg[0], msg[1]
        if kind == "start":
            return
        if kind == "epoch":
            self.store.append_epoch(run_id, msg[2])
            self._event("epoch", run_id, record=msg[2])
        elif kind == "ckpt":
            path = self.store.checkpoint_path(run_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(msg[3])
            os.replace(tmp, path)  # atomic: a kill leaves the old or the new checkpoint
        elif kind == "done":
            result = msg[2]
            status = result.get("status", "finished")
            status = status if status in DONE else "finished"
            self.store.finish(run_id, status, result)
            self._end(run_id, status)
        elif kind == "error":
            self.store.finish(run_id, "failed", error=str(msg[2]))
            self.errors[run_id] = str(msg[2])
            self._end(run_id, "failed")

    def interrupt(self) -> None:
        for run_id in list(self.active):
            self.store.finish(run_id, "interrupted", error="the sweep was interrupted")
            self._end(run_id, "interrupted")

    def _end(self, run_id: str, status: str) -> None:
        self.active.discard(run_id)
        self.final[run_id] = status
        self._event("end", run_id, status=status)

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
) -> SweepSummary:
    """Run every unfinished run of `plan`, writing `store`; returns the summary.

    `on_event(kind, planned_run, **info)` sees 'start' (resumed_from), 'epoch' (record) and
    'end' (status) for progress displays. KeyboardInterrupt propagates after the runs in
    flight are marked interrupted.
    """
    if jobs < 1:
        raise RethinkError("--jobs must be at least 1.")
    if backend not in ("local", "ray"):
        raise RethinkError(f"unknown backend '{backend}'; choose local or ray.")
    if address and backend != "ray":
        raise RethinkError("--address is only for --backend ray.")
    own = not isinstance(store, Store)
    st = Store(store) if own else store
    t0 = time.time()
    unlock = _lock(st.path)
    try:
        done = {r["run_id"] for r in st.runs() if r["status"] in DONE}
        summary = SweepSummary(plan.name, len(plan))
        todo = []
        for run in plan.runs:
            if run.run_id in done:
                summary.skipped += 1
                summary.statuses[run.run_id] = "skipped"
            else:
                todo.append((run.run_id, run.spec.normalized().to_dict()))
        opts = {"execute": execute, "data_dir": data_dir, "device": device}
        if backend == "ray":
            executor: Any = RayExecutor(jobs, address=address, **opts)
        elif jobs == 1:
            executor = InlineExecutor(**opts)
        else:
            executor = LocalExecutor(jobs, **opts)
        writer = _Writer(st, plan, on_event)
        restore = _sigterm_as_interrupt()
        try:
            if todo:
                executor.run(todo, writer.prepare, writer.handle)
        except KeyboardInterrupt:
            writer.interrupt()
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
        unlock()
        if own:
            st.close()


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
