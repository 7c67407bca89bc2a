"""The one way a run gets into the store: lock, begin, resume or restart, epochs, checkpoints,
finish. Used by `rethink run` (rethink.runner.run), the sweep driver and the demo.

    rec = Recorder(store, spec, sweep="fig1a")     # spec: a normalized RunSpec
    resume = rec.begin()                           # the run's lock; a checkpoint to resume or None
    rec.started(provenance)                        # where and how it computes (threads, device...)
    rec.epoch(metrics, examples)                   # each epoch as it ends
    rec.checkpoint(state)                          # atomically, beside the store
    rec.finish(status, result) / rec.fail(error) / rec.interrupt(why)
    rec.close()                                    # frees the lock
    forget(store, ["8d1f4e1a"])                    # a stored run and its files, to train again
    stop = time_budget(3600)                       # should_stop: true once an hour has passed

Rules, decided once:
- One writer per run: `begin` takes an exclusive lock on <store>.locks/<run_id>.lock (a POSIX
  advisory lock, freed by the kernel even on SIGKILL). A second writer gets one sentence
  ("run R is being trained by process P on host H; ...") and nothing is written. A lock left by
  a dead process is taken over, and a notice says so.
- Statuses are exactly those the engine ends with: finished, diverged, interrupted (plus
  failed for an exception). Anything else is an error, never recorded as finished.
- One checkpoint format (torch.save of the state a record's `state()` gives, plus run_id,
  spec and, for the last one, `final` = the status), one atomic writer (`save_checkpoint`: a
  temporary file in the same folder, fsync, rename), one loader (`load_checkpoint`,
  `weights_only=True`).
- Final checkpoints are kept: the last checkpoint of a finished or diverged run stays beside
  the store with the model's weights and bookkeeping (the optimizer's momentum is dropped, half
  the size). rethink.measures reads them. They are never resumed.
- A checkpoint is resumed only if it is whole, belongs to the run, is not final and the store
  holds every epoch up to it; otherwise the run starts over and a notice names the file and why.
- A time budget (`--stop-after`, `stop_after=`) stops a run at the first epoch end after it:
  that epoch is checkpointed and the run marked interrupted, so nothing computed is lost and
  the next start resumes right after it. A sweep starts no run once its budget is spent.
- A full disk is bad input: one sentence naming the device and what was needed, the run marked
  interrupted where the store can still take that, temporary files removed; rerunning after
  freeing space resumes.
"""

from __future__ import annotations

import errno
import functools
import io
import json
import math
import os
import shutil
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rethink.errors import RethinkError
from rethink.store import DONE, Store

ENGINE_STATUSES = ("finished", "diverged", "interrupted")
Notice = Callable[[str], None]


def stderr_notice(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)


# ---- the time budget ----------------------------------------------------------------------
def deadline_after(stop_after: float | None) -> float | None:
    """The wall-clock time (time.time()) `stop_after` seconds from now, or None for no budget.
    A negative, non-finite or non-numeric budget raises RethinkError."""
    if stop_after is None:
        return None
    if isinstance(stop_after, bool) or not isinstance(stop_after, (int, float)):
        raise RethinkError(f"the time budget must be a number of seconds, not {stop_after!r}.")
    if not math.isfinite(stop_after) or stop_after < 0:
        raise RethinkError(
            f"the time budget must be a finite number of seconds >= 0, not {stop_after!r}."
        )
    return time.time() + float(stop_after)


def time_budget(stop_after: float | None) -> Callable[[], bool] | None:
    """A `should_stop` that turns true once `stop_after` seconds have passed (None: None).
    The engine asks it after every epoch, so a run stops at the first epoch end after the
    budget, with that epoch checkpointed."""
    return past(deadline_after(stop_after))


def past(deadline: float | None) -> Callable[[], bool] | None:
    """A `should_stop` that turns true at the wall-clock time `deadline` (None: None)."""
    if deadline is None:
        return None
    return lambda: time.time() >= deadline


# ---- the run lock -------------------------------------------------------------------------
class RunLock:
    """An exclusive lock on one run of one store (see the module docstring)."""

    def __init__(self, store_path: Path, run_id: str, notice: Notice = stderr_notice):
        self.path = store_path.with_name(store_path.name + ".locks") / f"{run_id}.lock"
        self.run_id = run_id
        self._fd: int | None = None
        self._acquire(notice)

    def _acquire(self, notice: Notice) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RethinkError(
                    f"run {self.run_id} is being trained by {holder}; "
                    "wait for it or use another store."
                ) from None
            try:  # the file may have been unlinked by a holder releasing it: lock the new one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            stale = _read_holder(fd, default="")
            if stale:
                notice(f"took over the lock of run {self.run_id} left by {stale}, which is gone.")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}".encode(), 0)
            self._fd = fd
            return
        raise RethinkError(f"could not take the lock {self.path}; try again.")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)  # closing frees the flock
        self._fd = None


def _read_holder(fd: int, default: str = "another process") -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
    except OSError:
        return default
    if len(text) >= 2:
        return f"process {text[0]} on host {text[1]}"
    return default


# ---- checkpoints --------------------------------------------------------------------------
def save_checkpoint(path: Path, state: dict[str, Any] | bytes) -> int:
    """Write a checkpoint atomically (temporary file, fsync, rename); returns its size.

    The last checkpoint of a finished or diverged run (state["final"]) is never resumed, so
    it keeps the model and bookkeeping but not the optimizer's momentum."""
    if isinstance(state, dict):
        if state.get("final") in DONE:
            state = {k: v for k, v in state.items() if k != "optimizer"}
        blob = dump_checkpoint(state)
    else:
        blob = state
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(path, len(blob)) from None
        raise RethinkError(f"cannot write the checkpoint {path} ({err.strerror}).") from None
    return len(blob)


def remove_temp_checkpoints(path: Path) -> None:
    """Remove the temporary files that save_checkpoint(path, ...) calls left behind."""
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def dump_checkpoint(state: dict[str, Any]) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def read_checkpoint(src: Path | bytes) -> dict[str, Any]:
    """torch.load(weights_only=True) of a checkpoint file or its bytes; raises on damage."""
    import torch

    f: Any = io.BytesIO(src) if isinstance(src, bytes) else src
    return torch.load(f, map_location="cpu", weights_only=True)


def load_checkpoint(
    path: Path, run_id: str, *, store: Store | None = None, notice: Notice | None = None
) -> dict[str, Any] | None:
    """The resumable state at `path` for `run_id`, or None (start the run over).

    None without a word when there is no file, or when it is the final checkpoint of a run
    whose result the store lacks (that run is simply run again). For any other reason (a torn
    or foreign file, missing parts, epochs the store does not hold) `notice` hears one line
    naming the file and what happens next."""
    from rethink.train import STATE_KEYS

    if not path.is_file():
        return None

    def refuse(why: str) -> None:
        if notice is not None:
            notice(f"checkpoint {path} {why}; starting run {run_id} over.")
        return None

    try:
        state = read_checkpoint(path)
    except Exception as err:  # a torn or foreign file
        return refuse(f"cannot be read ({type(err).__name__})")
    if not isinstance(state, dict):
        return refuse("is not a rethink checkpoint")
    if state.get("run_id") != run_id:
        return refuse(f"belongs to another run ({state.get('run_id')})")
    if state.get("final"):
        return None  # the run ended but its result never reached the store: run it again
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        return refuse(f"lacks {', '.join(missing)}")
    epoch = state["epoch"]
    if not isinstance(epoch, int) or epoch < 0:
        return refuse("has no valid epoch")
    if store is not None:
        held = store.epoch_numbers(run_id)
        if held[: epoch + 1] != list(range(epoch + 1)):
            have = f"epochs 0-{held[-1]}" if held else "no epochs"
            return refuse(f"is from epoch {epoch} but the store holds {have} of it")
    return state


def check_state_fits(state: dict[str, Any], model: Any) -> str | None:
    """Why a checkpoint's tensors do not fit `model` (None when they do)."""
    import torch

    mine = model.state_dict()
    theirs = state.get("model")
    if not isinstance(theirs, dict) or set(theirs) != set(mine):
        return "does not hold this model's parameters"
    for k, v in mine.items():
        t = theirs[k]
        if not isinstance(t, torch.Tensor) or t.shape != v.shape:
            return f"holds a tensor of the wrong shape for {k}"
    for key in ("order_rng", "cpu_rng"):
        t = state.get(key)
        if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8:
            return f"holds no valid {key} generator state"
    if not isinstance(state.get("optimizer"), dict):
        return "holds no optimizer state"
    return None


class DiskFull(RethinkError):
    """The device holding `path` is full (bad input: one sentence, exit 2)."""

    def __init__(self, path: Path, needed: int | None = None):
        self.path = path
        try:
            free = shutil.disk_usage(path.parent if path.parent.exists() else ".").free
        except OSError:
            free = None
        dev = _mount_point(path)
        need = f"about {_mb(needed)} more were needed" if needed else "it could not grow"
        have = f", {_mb(free)} free" if free is not None else ""
        super().__init__(
            f"the device holding {path} ({dev}{have}) is full: {need}; "
            "free some space and run the same command again to resume."
        )


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


def _mount_point(path: Path) -> str:
    p = path.resolve().parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return f"mounted at {p}"


def _is_disk_full(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(err, sqlite3.Error) and "full" in str(err).lower()


# ---- the recorder -------------------------------------------------------------------------
class Recorder:
    """Records one run in a store; the only code that writes a run's rows (see the module
    docstring). `spec` is a normalized RunSpec."""

    def __init__(
        self,
        store: Store,
        spec: Any,
        *,
        sweep: str | None = None,
        label: str | None = None,
        notice: Notice = stderr_notice,
    ):
        self.store, self.spec, self.sweep = store, spec, sweep
        self.run_id = spec.run_id()
        self.label = label or spec.describe()
        self.notice = notice
        self.ckpt = store.checkpoint_path(self.run_id)
        self.lock: RunLock | None = None
        self.resumed_from: int | None = None
        self.open = False

    # -- start
    def begin(self) -> dict[str, Any] | None:
        """Lock the run, pick its checkpoint (or none), drop epochs after it, mark it running.
        Returns the state to resume from, or None to start at epoch 0."""
        if self.store.readonly:
            raise RethinkError(f"the store {self.store.path} is read-only; cannot train into it.")
        self.lock = RunLock(self.store.path, self.run_id, self.notice)
        try:
            self._clean_temp_files()
            state = load_checkpoint(self.ckpt, self.run_id, store=self.store, notice=self.notice)
            self.resumed_from = int(state["epoch"]) if state else None
            self._write(self._begin_rows, self.resumed_from)
        except BaseException:
            self.close()
            raise
        self.open = True
        return state

    def _begin_rows(self, resumed_from: int | None) -> None:
        self.store.begin_run(self.run_id, self.spec.to_dict(), sweep=self.sweep, label=self.label)
        self._drop_after(-1 if resumed_from is None else resumed_from)

    def _drop_after(self, epoch: int) -> None:
        """Forget the stored epochs (and per-example records) after `epoch`."""
        self.store.truncate_epochs(self.run_id, epoch)
        if self.spec.train.record_examples:
            _records().truncate(self.store.db, self.run_id, epoch)

    def restart(self, why: str) -> None:
        """The compute side found the checkpoint unusable: start over from epoch 0."""
        self.notice(f"checkpoint {self.ckpt} {why}; starting run {self.run_id} over.")
        self.resumed_from = None
        self._write(self._drop_after, -1)

    def rewind(self, epoch: int, why: str) -> None:
        """The executor re-ran a lost task from the checkpoint at `epoch` (-1: from scratch):
        drop the epochs after it, which the new attempt recomputes."""
        self.notice(f"run {self.run_id} {why}; it resumes after epoch {epoch}.")
        self.resumed_from = epoch if epoch >= 0 else None
        self._write(self._drop_after, epoch)

    def started(self, provenance: dict[str, Any], arrays: dict[str, Any] | None = None) -> None:
        """Where and how the run computes; a resumed run on another thread count says so."""
        before = (self.store.get_run(self.run_id) or {}).get("provenance") or {}
        attempts = list(before.get("attempts", []))
        if self.resumed_from is None:
            attempts = []
        keys = ("threads", "device", "cpu", "cpu_capability", "host", "pid", "rethink", "git")
        attempt = {k: provenance.get(k) for k in keys}
        attempt["from_epoch"] = self.resumed_from if self.resumed_from is not None else 0
        attempts.append(attempt)
        earlier = {a.get("threads") for a in attempts[:-1]} - {None}
        if earlier and earlier != {provenance.get("threads")}:
            self.notice(
                f"run {self.run_id} resumes on {provenance.get('threads')} threads; its earlier "
                f"epochs ran on {', '.join(map(str, sorted(earlier)))}: the float trajectory "
                "differs from an uninterrupted run (both are recorded)."
            )
        # the kernels torch picks for this CPU (AVX2, AVX512, ...) round differently: a run
        # resumed on a CPU with other kernels is no longer the uninterrupted run's trajectory
        isa = provenance.get("cpu_capability")
        before_isa = {a.get("cpu_capability") for a in attempts[:-1]} - {None}
        if str(provenance.get("device", "")).startswith("cpu") and before_isa - {isa}:
            self.notice(
                f"run {self.run_id} resumes on a CPU with {isa} kernels ({provenance.get('cpu')}); "
                f"its earlier epochs ran with {', '.join(sorted(before_isa))}: the float "
                "trajectory differs from an uninterrupted run (both are recorded)."
            )
        prov = {**provenance, "attempts": attempts}
        if earlier:
            prov["threads"] = sorted(earlier | {provenance.get("threads")})
        if before_isa - {isa}:
            prov["cpu_capability"] = sorted(before_isa | {isa} - {None})
        self._write(self.store.set_provenance, self.run_id, prov)
        if arrays is not None and self.spec.train.record_examples:
            a = arrays
            self._write(
                _records().write_run_arrays, self.store.db, self.run_id,
                a["labels"], a["clean_labels"], a["changed"], a.get("threshold"),
            )  # fmt: skip

    # -- progress
    def epoch(self, metrics: dict[str, Any], examples: dict[str, Any] | None = None) -> None:
        self._write(self.store.append_epoch, self.run_id, metrics)
        if examples is not None and self.spec.train.record_examples:
            self._write(
                _records().write_epoch, self.store.db, self.run_id, metrics["epoch"], examples
            )

    def checkpoint(self, state: dict[str, Any] | bytes) -> None:
        try:
            save_checkpoint(self.ckpt, state)
        except DiskFull:
            self._mark_interrupted("the disk is full")
            raise

    # -- end
    def finish(self, status: str, result: dict[str, Any]) -> None:
        if status not in ENGINE_STATUSES:
            self.fail(f"the engine ended with an unknown status {status!r}")
            raise RethinkError(f"run {self.run_id} ended with an unknown status {status!r}.")
        self._write(self.store.finish, self.run_id, status, result)
        self.close()

    def fail(self, error: str) -> None:
        try:
            self._write(self.store.finish, self.run_id, "failed", None, error[:500])
        finally:
            self.close()

    def interrupt(self, why: str) -> None:
        try:
            self._write(self.store.finish, self.run_id, "interrupted", None, why)
        finally:
            self.close()

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        self.open = False

    # -- helpers
    def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except RethinkError:
            raise
        except (OSError, sqlite3.Error) as err:
            if _is_disk_full(err):
                self._mark_interrupted("the disk is full")
                raise DiskFull(self.store.path) from None
            raise

    def _mark_interrupted(self, why: str) -> None:
        try:
            self.store.finish(self.run_id, "interrupted", None, why)
        except Exception:  # the store cannot take even that: the next start sees 'running'
            pass

    def _clean_temp_files(self) -> None:
        remove_temp_checkpoints(self.ckpt)


def forget(store_path: str | os.PathLike, keys: list[str]) -> list[dict[str, Any]]:
    """Delete the runs that `keys` name (run ids or unique prefixes) with everything kept of
    them, checkpoints included, so that the next run or sweep trains them from the start; all
    or nothing: every key must name a run, and none may be held by a live process (its lock is
    taken for the deletion). Returns run_id, label (the sweep's, or None), spec, status and
    epochs (how many were deleted) of each."""
    path = Path(store_path)
    if not path.is_file():
        raise RethinkError(f"no store at {path}; give the right --store path.")
    with Store(path) as st:
        ids = list(dict.fromkeys(st.resolve(k) for k in keys))
        locks: list[RunLock] = []
        try:
            for rid in ids:
                locks.append(RunLock(st.path, rid))
            rows = [st.get_run(rid) for rid in ids]
            counts = st.forget(ids)
            for rid in ids:  # after the commit: a crash in between leaves a stray file only
                st.checkpoint_path(rid).unlink(missing_ok=True)
                remove_temp_checkpoints(st.checkpoint_path(rid))
        finally:
            for lock in locks:
                lock.release()
    keep = ("run_id", "label", "spec", "status")
    return [{**{k: r.get(k) for k in keep}, "epochs": counts[r["run_id"]]} for r in rows]


def _records():
    """rethink.dynamics' per-example record tables (imported only for runs that record)."""
    from rethink.dynamics import _records

    return _records


# ---- provenance ---------------------------------------------------------------------------
_STATIC: dict[str, Any] | None = None


def provenance(*, device: Any, data: Any = None, spec: Any = None) -> dict[str, Any]:
    """What explains a run's numbers besides its spec: torch intra-op threads, device name,
    the CPU's microarchitecture and the kernels torch picks on it (cpu_identity), CUDA /
    cuDNN versions where present, rethink version and git commit (from a checkout; "+dirty"
    with uncommitted changes), Python / numpy / torch versions, host, pid, and a checksum of
    the training data the run saw (after the subset and the corruption)."""
    import torch

    global _STATIC
    if _STATIC is None:
        import platform

        import numpy

        from rethink import __version__

        _STATIC = {
            "rethink": __version__,
            "git": _git_commit(),
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "torch": torch.__version__,
            "host": socket.gethostname(),
        }
    prov = {**_STATIC, "pid": os.getpid(), "threads": torch.get_num_threads()}
    dev = torch.device(device)
    prov["device"] = _device_name(dev)
    prov["cpu"], prov["cpu_capability"] = cpu_identity()
    if torch.version.cuda:
        prov["cuda"] = torch.version.cuda
    if torch.backends.cudnn.is_available():
        prov["cudnn"] = str(torch.backends.cudnn.version())
    if data is not None:
        prov["data_sha256"] = data_checksum(data)
    if spec is not None:
        code = _plugin_provenance(spec)
        if code:
            prov["code"] = code
    return prov


def data_checksum(data: Any) -> str:
    """SHA-256 over the training tensors a run sees (x_train bytes, then y_train bytes)."""
    import hashlib

    h = hashlib.sha256()
    for t in (data.x_train, data.y_train):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo (empty where there is none), read once."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                if info:
                    break  # the first processor's block is enough
                continue
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def cpu_identity() -> tuple[str, str | None]:
    """('AuthenticAMD family 25 model 1 stepping 1', 'AVX2'): the CPU's vendor and
    microarchitecture (model names such as 'AMD EPYC' do not tell one generation from the
    next), and the kernels torch dispatches to on it (ATEN_CPU_CAPABILITY can lower them).
    Two CPUs whose capabilities differ give different float trajectories for the same run."""
    import platform

    import torch

    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # noqa: BLE001 - an old or unusual build: the name alone is recorded
        capability = None
    info = _cpuinfo()
    if "cpu family" not in info:
        return platform.processor() or platform.machine(), capability
    parts = [info.get("vendor_id", "")]
    parts += [f"{k.split()[-1]} {info[k]}" for k in ("cpu family", "model", "stepping")
              if k in info]  # fmt: skip
    return " ".join(parts).strip(), capability


def _device_name(dev: Any) -> str:
    import platform

    import torch

    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    cpu = _cpuinfo().get("model name") or platform.processor() or platform.machine()
    return f"{dev.type}: {cpu}"


def _git_commit() -> str | None:
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        top = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        if top.returncode != 0:
            return None
        root, commit = top.stdout.split()[:2]
        if not (Path(root) / "src" / "rethink").resolve() == here:
            return None  # some other repository around an installed copy
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _plugin_provenance(spec: Any) -> dict[str, Any]:
    from rethink.plugins import spec_code

    return spec_code(spec.model.name, spec.data.dataset)


def provenance_json(prov: dict[str, Any]) -> str:
    return json.dumps(prov, sort_keys=True, default=str)
