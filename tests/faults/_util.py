"""Helpers of the fault suite: run the CLI (in-process or as a child), fingerprint a store,
read its rows, check the one-sentence contract, mount tmpfs / read-only binds."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

# Columns that hold wall-clock time or machine facts: equal runs differ there, nothing else.
_TIMING = ("seconds", "created", "started", "finished", "host", "versions", "extra", "time")


def cli(argv: list[str]) -> tuple[int, str, str]:
    """`rethink ARGV` in this interpreter -> (exit code, stdout, stderr). Any exception that
    escapes main() is rendered as a traceback into stderr, as the real program would."""
    import traceback

    from rethink.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # noqa: B036 - a crash is what the table looks for
            traceback.print_exc(file=err)
            code = 1
    # What process exit would do: free whatever still holds a store connection, so a -wal or
    # -shm file left beside the store is one a real exit leaves too.
    gc.collect()
    return code, out.getvalue(), err.getvalue()


def env(**extra: str) -> dict:
    """The child's environment: one thread, unbuffered output, this interpreter's path."""
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", COLUMNS="200")
    e.update(extra)
    return e


def rethink_argv(*args) -> list[str]:
    return [sys.executable, "-m", "rethink", *[str(a) for a in args]]


def run_child(*args, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        rethink_argv(*args), capture_output=True, text=True, timeout=timeout, env=env(), **kw
    )


def one_sentence(code: int, out: str, err: str) -> str | None:
    """None if (code, out, err) keep the bad-input contract, else what broke it."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if "Traceback" in out + err:
        return "a traceback"
    if code != 2:
        return f"exit status {code}, not 2"
    if len(lines) != 1 or err.count("\n") > 1:
        return f"{len(err.splitlines())} lines on stderr, not one: {err[-300:]!r}"
    if not lines[0].startswith("error: "):
        return f"stderr does not start with 'error: ': {lines[0][:120]!r}"
    if any(c in err for c in "╭╰│") or "Usage:" in out + err:
        return "a usage box"
    return None


def fingerprint(store: Path) -> dict:
    """What 'untouched' means: the store's bytes (or its absence), no -wal / -shm beside it,
    the checkpoint folder's listing, and nothing new beside the store (lock files included)."""
    store = Path(store)
    ckpt = Path(f"{store}.ckpt")
    return {
        "bytes": hashlib.sha256(store.read_bytes()).hexdigest() if store.exists() else None,
        "wal": Path(f"{store}-wal").exists(),
        "shm": Path(f"{store}-shm").exists(),
        "journal": Path(f"{store}-journal").exists(),
        "ckpt": sorted(p.name for p in ckpt.iterdir()) if ckpt.is_dir() else None,
        "beside": sorted(p.name for p in store.parent.glob(f"{store.name}*")),  # locks too
    }


def _columns(con, table: str) -> list[str]:
    return [r[1] for r in con.execute(f"PRAGMA table_info({table})")]


def store_rows(store: Path) -> dict:
    """{run_id: {"status", "epochs": [(epoch, metrics...)], "result": (...)}}, timing columns
    left out, read through a read-only connection (so reading never changes the store)."""
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        out = {}
        keep = {t: [c for c in _columns(con, t) if not any(k in c for k in _TIMING)]
                for t in ("runs", "epochs", "results")}  # fmt: skip
        for run_id, status in con.execute("SELECT run_id, status FROM runs"):
            ep = con.execute(
                f"SELECT {', '.join(keep['epochs'])} FROM epochs WHERE run_id = ? ORDER BY epoch",
                (run_id,),
            ).fetchall()
            res = con.execute(
                f"SELECT {', '.join(keep['results'])} FROM results WHERE run_id = ?", (run_id,)
            ).fetchone()
            out[run_id] = {"status": status, "epochs": ep, "result": res}
        return out
    finally:
        con.close()


def epoch_numbers(store: Path, run_id: str | None = None) -> list[int]:
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        q = "SELECT epoch FROM epochs" + (" WHERE run_id = ?" if run_id else "")
        return sorted(r[0] for r in con.execute(q + " ORDER BY epoch", (run_id,) if run_id else ()))
    finally:
        con.close()


@contextlib.contextmanager
def mounted(target: Path, *args: str):
    """mount ARGS TARGET for the duration; yields False (and mounts nothing) where mounting
    is not allowed. Always unmounts."""
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def reference(store: Path) -> dict:
    """{"rows": store_rows(store), "epochs": {run_id: [epoch numbers]}, "store": store} of a
    finished store (copy it before use: tests share it)."""
    rows = store_rows(store)
    return {"rows": rows, "epochs": {r: epoch_numbers(store, r) for r in rows}, "store": store}


def assert_same_as(store: Path, ref: dict) -> None:
    """Every run of `ref` in `store`: each epoch once, contiguous, rows equal (bit for bit)."""
    rows = store_rows(store)
    assert set(rows) == set(ref["rows"])
    for run_id, want in ref["epochs"].items():
        got = epoch_numbers(store, run_id)
        assert got == list(range(got[0], got[-1] + 1)) if got else False, f"{run_id}: gaps"
        assert got == want, f"{run_id}: epochs {got[:3]}..{got[-3:]}, want {want[0]}..{want[-1]}"
        assert rows[run_id] == ref["rows"][run_id], f"{run_id} differs from the uninterrupted run"
