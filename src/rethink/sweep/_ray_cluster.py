"""A Ray cluster that rethink starts for one sweep, and that leaves nothing behind.

`start_local(num_cpus)` starts Ray on this machine with its own temporary folder
(`/tmp/rethink-ray-XXXXXXXX`, short enough for Ray's socket paths) and a reaper: a small
process in its own session that watches the driver through a pipe. `LocalCluster.stop()`
shuts Ray down, ends any process the cluster started that is still alive (the dashboard and
runtime-env agents, idle workers), removes the temporary folder and lets the reaper go. If the
driver dies without stopping it (SIGKILL, a crash), the pipe closes and the reaper does the
same within a second or two instead of leaving Ray's processes to linger and its session
folder behind. Linux only for the process bookkeeping (/proc); elsewhere stop() still shuts
Ray down and removes the folder.

Run as a script, `python _ray_cluster.py DRIVER_PID TEMP_DIR`, this file is the reaper.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PREFIX = "rethink-ray-"


def _short_tmp() -> str:
    """/tmp where it exists (Ray's unix socket paths must stay under ~107 bytes)."""
    return "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every process (empty where /proc is missing)."""
    table: dict[int, tuple[int, str]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 19:
            table[int(entry)] = (int(fields[1]), fields[19])  # ppid, starttime
    return table


def descendants(root: int, table: dict[int, tuple[int, str]] | None = None) -> dict[int, str]:
    """pid -> start time of every process below `root`."""
    table = _proc_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, str] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out[pid] = table[pid][1]
        todo.extend(children.get(pid, []))
    return out


def _mentions(folder: str) -> dict[int, str]:
    """Processes whose command line names `folder` (Ray's own processes name their session)."""
    out: dict[int, str] = {}
    table = _proc_table()
    needle = folder.encode()
    for pid in table:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if needle in f.read():
                    out[pid] = table[pid][1]
        except OSError:
            continue
    return out


def end_processes(procs: dict[int, str], grace: float = 3.0) -> int:
    """SIGTERM, then after `grace` seconds SIGKILL, each process still alive with the same
    start time (so a reused pid is never hit); returns how many were still alive."""
    me = os.getpid()

    def alive() -> dict[int, str]:
        table = _proc_table()
        return {p: t for p, t in procs.items() if p != me and table.get(p, (0, None))[1] == t}

    live = alive()
    for pid in live:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.time() + grace
    while live and time.time() < deadline:
        time.sleep(0.1)
        live = alive()
    for pid in live:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return len(live)


class LocalCluster:
    """A Ray cluster on this machine that belongs to one sweep (see the module's doc)."""

    def __init__(self, num_cpus: int, **init_kwargs: Any):
        import ray

        self.temp_dir = tempfile.mkdtemp(prefix=PREFIX, dir=_short_tmp())
        self.before = set(descendants(os.getpid()))
        self.reaper: subprocess.Popen | None = None
        try:
            self.reaper = subprocess.Popen(
                # run as a plain script: imports nothing but the standard library
                [sys.executable, os.path.abspath(__file__), str(os.getpid()), self.temp_dir],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C to the driver's group does not stop it
            )
            self.before.add(self.reaper.pid)
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                _temp_dir=self.temp_dir,
                **init_kwargs,
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Shut Ray down and remove everything it left; safe to call twice."""
        started = {p: t for p, t in descendants(os.getpid()).items() if p not in self.before}
        try:
            import ray

            if ray.is_initialized():
                ray.shutdown()
        finally:
            started.update(
                {p: t for p, t in descendants(os.getpid()).items() if p not in self.before}
            )
            started.update(_mentions(self.temp_dir))
            if self.reaper is not None:
                started.pop(self.reaper.pid, None)  # it names the folder too; it ends itself
            end_processes(started)
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            if self.reaper is not None:
                try:
                    if self.reaper.stdin:
                        self.reaper.stdin.close()  # the reaper finds nothing left and exits
                    self.reaper.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    self.reaper.kill()
                self.reaper = None


def start_local(num_cpus: int, **init_kwargs: Any) -> LocalCluster:
    return LocalCluster(num_cpus, **init_kwargs)


def _reap(driver: int, temp_dir: str) -> None:
    """Watch the driver (stdin closes when it exits or dies); then end what its Ray left."""
    import select

    seen: dict[int, str] = {}
    me = os.getpid()
    while True:
        table = _proc_table()
        for pid, start in descendants(driver, table).items():
            if pid != me:
                seen[pid] = start
        try:
            ready, _, _ = select.select([sys.stdin], [], [], 0.5)
        except (OSError, ValueError):
            ready = [sys.stdin]
        if ready:
            try:
                chunk = os.read(sys.stdin.fileno(), 1024)
            except OSError:
                chunk = b""
            if not chunk:
                break
    seen.update(_mentions(temp_dir))
    _log(f"driver {driver} gone or done; ending {sorted(seen)}")
    left = end_processes(seen)
    shutil.rmtree(temp_dir, ignore_errors=True)
    _log(f"{left} were still alive; removed {temp_dir}: {not os.path.exists(temp_dir)}")


def _log(text: str) -> None:
    """Debugging aid: RETHINK_RAY_REAPER_LOG=FILE makes the reaper say what it does."""
    path = os.environ.get("RETHINK_RAY_REAPER_LOG")
    if path:
        with open(path, "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} reaper {os.getpid()}: {text}\n")


def leftovers() -> tuple[list[int], list[Path]]:
    """Processes naming a rethink Ray folder, and such folders, that exist now (for tests)."""
    base = Path(_short_tmp())
    folders = sorted(base.glob(PREFIX + "*"))
    pids = sorted({p for folder in folders for p in _mentions(str(folder))})
    return pids, folders


if __name__ == "__main__":
    # Only the pipe ends the reaper: Ray's shutdown of a dying driver signals its children.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        _reap(int(sys.argv[1]), sys.argv[2])
    except BaseException as err:
        _log(f"failed: {type(err).__name__}: {err}")
        raise
