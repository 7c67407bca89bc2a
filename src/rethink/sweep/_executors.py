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

Prepare = Callable[[str], Any]  # run_id -> resume (bytes, a path or None), or SKIP
SKIP = "rethink:skip"  # prepare's answer for a run that must not be handed out
Handle = Callable[[tuple], None]


class InlineExecutor:
    """Runs in this process; KeyboardInterrupt stops it at once."""

    def __init__(self, *, execute: str = DEFAULT_EXECUTE, **opts: Any):
        self.execute, self.opts = execute, opts

    def run(self, tasks: list[tuple[str, dict]], prepare: Prepare, handle: Handle) -> None:
        for run_id, spec in tasks:
            resume = prepare(run_id)
            if resume == SKIP:
                continue
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
        while pending:
            run_id, spec = pending.pop(0)
            resume = prepare(run_id)
            if resume == SKIP:
                continue
            running[run_id] = None
            task_q.put((run_id, spec, resume))
            return

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
                if prepare(run_id) != SKIP:
                    handle(("error", run_id, "no worker process is left to run it"))


def _ray_task(task: tuple, q: Any, opts: dict) -> None:
    run_one(task, q.put, **opts)


class RayExecutor:
    """Ray tasks, one CPU each; a local cluster of `jobs` CPUs unless `address` is given.

    A local cluster is rethink's own (rethink.sweep._ray_cluster): it is shut down on every
    way out (normal end, an error, Ctrl-C, SIGTERM; a reaper process covers SIGKILL), with its
    processes ended and its temporary folder removed. A cluster at `address` is only
    disconnected from. Messages come back through a queue actor pinned to the driver's node.
    A run whose task is lost (its worker or node died) is handed out again from the last
    checkpoint that came back, at most `reschedules` times; each time is recorded in the run's
    result (`rescheduled`) and said on stderr. Modules of users' own models and datasets that
    live outside the installed packages are shipped with runtime_env py_modules (given to
    ray.init, so only when rethink connects; a caller who initialised Ray passes its own).
    """

    reschedules = 2

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
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        except ImportError:
            raise RethinkError(
                "the ray backend needs Ray: pip install 'rethink[ray]' (or 'ray>=2.9')."
            ) from None
        from rethink.sweep import _ray_cluster

        runtime_env = _runtime_env(tasks)
        cluster = None
        connected_here = not ray.is_initialized()
        if connected_here:
            on_term = signal.getsignal(signal.SIGTERM)
            try:
                # Local modules can only be uploaded for the whole job, at ray.init.
                env = {"runtime_env": runtime_env} if runtime_env else {}
                if self.address:
                    ray.init(address=self.address, log_to_driver=False, **env)
                else:
                    cluster = _ray_cluster.start_local(self.jobs, **env)
            except (ConnectionError, RuntimeError, ValueError) as err:
                where = self.address or "a local cluster"
                detail = " ".join(str(err).split())
                raise RethinkError(f"cannot start Ray on {where} ({detail}).") from None
            # ray.init replaces the SIGTERM handler with one that aborts the process; keep
            # the driver's (SIGTERM = interrupt: runs marked interrupted, the cluster stopped).
            if on_term is not None and signal.getsignal(signal.SIGTERM) is not on_term:
                try:
                    signal.signal(signal.SIGTERM, on_term)
                except ValueError:  # not the main thread
                    pass
        try:
            self._run(ray, Queue, NodeAffinitySchedulingStrategy, tasks, prepare, handle)
        finally:
            if cluster is not None:
                cluster.stop()
            elif connected_here and ray.is_initialized():
                ray.shutdown()

    def _run(self, ray, Queue, Affinity, tasks, prepare, handle) -> None:
        here = ray.get_runtime_context().get_node_id()
        # On the driver's node: a lost worker node must not take the messages with it.
        q = Queue(actor_options={"num_cpus": 0,
                                 "scheduling_strategy": Affinity(here, soft=False)})  # fmt: skip
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        pending = list(tasks)
        specs = dict(tasks)
        refs: dict[Any, str] = {}
        ended: set[str] = set()
        last: dict[str, tuple[int, bytes | None]] = {}  # run_id -> (epoch, checkpoint)
        moved: dict[str, list[dict]] = {}  # run_id -> reschedules so far

        def drain(block: bool) -> None:
            try:
                items = [q.get(timeout=0.5)] if block else []
            except _queue.Empty:
                items = []
            while not q.empty():
                items.append(q.get_nowait())
            for msg in items:
                kind, run_id = msg[0], msg[1]
                if kind == "start":
                    continue
                if kind == "ckpt":
                    last[run_id] = (int(msg[2]), msg[3])
                if kind == "done" and moved.get(run_id):
                    msg = (kind, run_id, {**dict(msg[2]), "rescheduled": moved[run_id]})
                handle(msg)
                if kind in ("done", "error"):
                    ended.add(run_id)

        def submit(run_id: str, resume: Any) -> None:
            refs[remote.remote((run_id, specs[run_id], resume), q, self.opts)] = run_id

        try:
            while pending or refs:
                while pending and len(refs) < self.jobs:
                    run_id, spec = pending.pop(0)
                    resume = prepare(run_id)
                    if resume == SKIP:
                        continue
                    if isinstance(resume, (str, os.PathLike)):
                        with open(resume, "rb") as f:
                            resume = f.read()  # workers may be other machines
                    last[run_id] = (-1, resume)
                    submit(run_id, resume)
                drain(block=True)
                ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
                if ready:
                    drain(block=False)  # a finished task's messages are all in the queue
                for ref in ready:
                    run_id = refs.pop(ref)
                    if run_id in ended:
                        continue
                    try:
                        ray.get(ref)
                        why, lost = "its Ray task ended without a result", False
                    except (ray.exceptions.RayTaskError, ray.exceptions.TaskCancelledError) as e:
                        why, lost = f"its Ray task failed ({type(e).__name__})", False
                    except Exception as err:  # its worker process or its node died
                        why, lost = f"its Ray task was lost ({type(err).__name__})", True
                    tries = moved.setdefault(run_id, [])
                    if lost and len(tries) < self.reschedules:
                        epoch, resume = last.get(run_id, (-1, None))
                        start = epoch if epoch >= 0 else _epoch_of(resume)
                        tries.append({"attempt": len(tries) + 2, "from_epoch": start,
                                      "why": why})  # fmt: skip
                        print(
                            f"run {run_id}: {why}; rescheduled from "
                            f"{'epoch ' + str(start) if start is not None else 'the start'} "
                            f"(attempt {len(tries) + 1} of {self.reschedules + 1}).",
                            file=sys.stderr,
                            flush=True,
                        )
                        handle(("resume", run_id, -1 if start is None else start, why))
                        submit(run_id, resume)
                        continue
                    if tries:
                        why += f", after {len(tries)} reschedule(s)"
                    handle(("error", run_id, why))
        finally:
            for ref in refs:
                ray.cancel(ref, force=True)
            try:
                q.shutdown()
            except Exception:  # the cluster is already going away
                pass


def _epoch_of(blob: bytes | None) -> int | None:
    """The epoch of a checkpoint given as bytes (None: no checkpoint)."""
    if not blob:
        return None
    import io

    import torch

    try:
        return int(torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)["epoch"])
    except Exception:
        return None


def _runtime_env(tasks: list[tuple[str, dict]]) -> dict | None:
    """py_modules for the users' own model / dataset modules that are not installed (found in
    the current folder or on PYTHONPATH), so Ray workers elsewhere can import them."""
    from rethink import plugins

    names = []
    for _, spec in tasks:
        for pair in (("model", spec.get("model", {}).get("name")),
                     ("dataset", spec.get("data", {}).get("dataset"))):  # fmt: skip
            if pair not in names:
                names.append(pair)
    refs = []
    for kind, name in names:
        ref = None
        try:
            ref = plugins.identify(kind, name)
        except Exception:  # reported when the run sets up
            pass
        if ref and ref["ref"] not in refs:
            refs.append(ref["ref"])
    paths = plugins.local_module_paths(refs) if refs else []
    return {"py_modules": paths} if paths else None
