"""Executors: where a sweep's runs compute. Each feeds messages to `handle` in the driver.

- `InlineExecutor`: in the driver's process, one run after another (`--jobs 1`).
- `LocalExecutor`: N spawned worker processes, messages over a multiprocessing queue.
- `RayExecutor`: Ray tasks (a local cluster, or an existing one at `address`), messages over a
  Ray queue actor.
Every executor calls `prepare(run)` just before a run is handed out (so the driver can record
it as running and find its checkpoint) and returns once every run has reported done or error.
"""

from __future__ import annotations

import os
import queue as _queue
import signal
import sys
from collections.abc import Callable
from typing import Any

from rethink.sweep._worker import DEFAULT_EXECUTE, run_one

Prepare = Callable[[str], Any]  # run_id -> resume (bytes, a path or None)
Handle = Callable[[tuple], None]


class InlineExecutor:
    """Runs in this process; KeyboardInterrupt stops it at once."""

    def __init__(self, *, execute: str = DEFAULT_EXECUTE, **opts: Any):
        self.execute, self.opts = execute, opts

    def run(self, tasks: list[tuple[str, dict]], prepare: Prepare, handle: Handle) -> None:
        for run_id, spec in tasks:
            resume = prepare(run_id)
            run_one((run_id, spec, resume), handle, execute=self.execute, **self.opts)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the driver dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _local_worker(task_q: Any, msg_q: Any, parent: int, opts: dict) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides what an interrupt means
    if os.getppid() != parent:  # the driver died before prctl took effect
        return
    while True:
        task = task_q.get()
        if task is None:
            return
        run_one(task, msg_q.put, **opts)


class LocalExecutor:
    """`jobs` worker processes on this machine, `threads` torch threads each."""

    def __init__(self, jobs: int, *, execute: str = DEFAULT_EXECUTE, **opts: Any):
        self.jobs = jobs
        self.opts = {"execute": execute, **opts}
        self.opts.setdefault("threads", max(1, (os.cpu_count() or 1) // jobs))

    def run(self, tasks: list[tuple[str, dict]], prepare: Prepare, handle: Handle) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
        task_q, msg_q = ctx.Queue(), ctx.Queue()
        n = min(self.jobs, len(tasks))
        workers = [
            ctx.Process(target=_local_worker, args=(task_q, msg_q, os.getpid(), self.opts))
            for _ in range(n)
        ]
        for w in workers:
            w.daemon = True
            w.start()
        pending = list(tasks)
        running: dict[str, int | None] = {}  # run_id -> worker pid once started
        try:
            for _ in range(n):
                self._give(pending, running, task_q, prepare)
            while running:
                try:
                    msg = msg_q.get(timeout=0.5)
                except _queue.Empty:
                    self._check_alive(workers, running, handle, pending, task_q, prepare)
                    continue
                kind, run_id = msg[0], msg[1]
                if kind == "start":
                    running[run_id] = msg[2]
                    continue
                handle(msg)
                if kind in ("done", "error"):
                    running.pop(run_id, None)
                    self._give(pending, running, task_q, prepare)
            for _ in workers:
                task_q.put(None)
            for w in workers:
                w.join(timeout=10)
        finally:
            for w in workers:
                if w.is_alive():
                    w.kill()
            for w in workers:
                w.join(timeout=5)

    @staticmethod
    def _give(pending: list, running: dict, task_q: Any, prepare: Prepare) -> None:
        if pending:
            run_id, spec = pending.pop(0)
            resume = prepare(run_id)
            running[run_id] = None
            task_q.put((run_id, spec, resume))

    def _check_alive(self, workers, running, handle, pending, task_q, prepare) -> None:
        for w in workers:
            if w.exitcode is not None and w.exitcode != 0:
                for run_id, pid in list(running.items()):
                    if pid == w.pid:
                        handle(("error", run_id, f"its worker process died (exit {w.exitcode})"))
                        running.pop(run_id)
        if not any(w.is_alive() for w in workers):
            for run_id in list(running):
                handle(("error", run_id, "no worker process is left to run it"))
                running.pop(run_id)
            while pending:  # recorded as failed rather than silently left out
                run_id, _ = pending.pop(0)
                prepare(run_id)
                handle(("error", run_id, "no worker process is left to run it"))


def _ray_task(task: tuple, q: Any, opts: dict) -> None:
    run_one(task, q.put, **opts)


class RayExecutor:
    """Ray tasks, one CPU each; a local cluster of `jobs` CPUs unless `address` is given."""

    def __init__(
        self, jobs: int, *, address: str | None = None, execute: str = DEFAULT_EXECUTE, **opts: Any
    ):
        self.jobs, self.address = jobs, address
        self.opts = {"execute": execute, **opts}
        self.opts.setdefault("threads", 1)

    def run(self, tasks: list[tuple[str, dict]], prepare: Prepare, handle: Handle) -> None:
        from rethink.errors import RethinkError

        try:
            import ray
            from ray.util.queue import Queue
        except ImportError:
            raise RethinkError(
                "the ray backend needs Ray: pip install 'rethink[ray]' (or 'ray>=2.9')."
            ) from None
        started_here = not ray.is_initialized()
        if started_here:
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address:
                kw["address"] = self.address
            else:
                kw["num_cpus"] = self.jobs
            try:
                ray.init(**kw)
            except (ConnectionError, RuntimeError, ValueError) as err:
                where = self.address or "a local cluster"
                raise RethinkError(f"cannot start Ray on {where} ({err}).") from None
        q = Queue()
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        pending = list(tasks)
        refs: dict[Any, str] = {}
        ended: set[str] = set()

        def drain(block: bool) -> None:
            try:
                items = [q.get(timeout=0.5)] if block else []
            except _queue.Empty:
                items = []
            while not q.empty():
                items.append(q.get_nowait())
            for msg in items:
                if msg[0] == "start":
                    continue
                handle(msg)
                if msg[0] in ("done", "error"):
                    ended.add(msg[1])

        try:
            while pending or refs:
                while pending and len(refs) < self.jobs:
                    run_id, spec = pending.pop(0)
                    resume = prepare(run_id)
                    if isinstance(resume, (str, os.PathLike)):
                        resume = open(resume, "rb").read()  # workers may be other machines
                    refs[remote.remote((run_id, spec, resume), q, self.opts)] = run_id
                drain(block=True)
                ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
                if ready:
                    drain(block=False)  # a finished task's messages are all in the queue
                for ref in ready:
                    run_id = refs.pop(ref)
                    if run_id not in ended:
                        try:
                            ray.get(ref)
                            why = "its Ray task ended without a result"
                        except Exception as err:  # the worker crashed or was lost
                            why = f"its Ray task failed ({type(err).__name__})"
                        handle(("error", run_id, why))
        finally:
            for ref in refs:
                ray.cancel(ref, force=True)
            q.shutdown()
            if started_here:
                ray.shutdown()
