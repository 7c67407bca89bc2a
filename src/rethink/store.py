"""The results store: one SQLite file in WAL mode, checkpoints in a folder beside it.

Tables
- runs(run_id, spec JSON, status, created/started/finished (unix s), host, versions JSON,
  error, sweep, label, provenance JSON): written before training starts; provenance (threads,
  device, git commit, data checksum, one entry per attempt: rethink.lifecycle.provenance)
  once the computing process has set the run up.
- epochs(run_id, epoch, step, train_loss, train_acc, test_loss, test_acc, lr, seconds,
  extra JSON): one row per finished epoch, written as the epoch ends. Epoch 0 is the
  evaluation before any training.
- results(run_id, status, epochs, epochs_to_fit, steps_to_fit, train_acc, test_acc,
  best_test_acc, best_test_epoch, train_loss, test_loss, params, seconds, extra JSON).

Statuses: running, finished, diverged, failed, interrupted. Only one process writes a run's
rows: rethink.lifecycle.Recorder, under the run's lock. Accuracies are fractions in [0, 1].
Checkpoints: <store>.ckpt/<run_id>.pt (the last one of a finished run is kept: its weights).

A damaged file (SQLite's quick_check fails) is refused in one sentence that says how to
recover it; a store on a read-only mount is opened immutable for reading.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rethink.errors import RethinkError

STATUSES = ("running", "finished", "diverged", "failed", "interrupted")
DONE = ("finished", "diverged")  # a run in one of these is never run again

EPOCH_COLUMNS = (
    "epoch",
    "step",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "lr",
    "seconds",
)
RESULT_COLUMNS = (
    "status",
    "epochs",
    "epochs_to_fit",
    "steps_to_fit",
    "train_acc",
    "test_acc",
    "best_test_acc",
    "best_test_epoch",
    "train_loss",
    "test_loss",
    "params",
    "seconds",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, spec TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL, started REAL, finished REAL, host TEXT, versions TEXT,
    error TEXT, sweep TEXT, label TEXT, provenance TEXT);
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL REFERENCES runs(run_id), epoch INTEGER NOT NULL, step INTEGER,
    train_loss REAL, train_acc REAL, test_loss REAL, test_acc REAL, lr REAL, seconds REAL,
    extra TEXT, PRIMARY KEY (run_id, epoch));
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT PRIMARY KEY REFERENCES runs(run_id), status TEXT, epochs INTEGER,
    epochs_to_fit INTEGER, steps_to_fit INTEGER, train_acc REAL, test_acc REAL,
    best_test_acc REAL, best_test_epoch INTEGER, train_loss REAL, test_loss REAL,
    params INTEGER, seconds REAL, extra TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""
SCHEMA_VERSION = "1"


def versions() -> dict[str, str]:
    """Versions that decide what a run computes, recorded with every run."""
    import numpy
    import torch

    from rethink import __version__

    return {
        "rethink": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


class Store:
    """A results store at `path` (created on first write unless `readonly`)."""

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise RethinkError(f"{self.path} is a folder, not a store file.")
        if readonly:
            if not self.path.is_file():
                raise RethinkError(
                    f"no store at {self.path}; run something first or give the right --store path."
                )
            if self.path.stat().st_size == 0:
                raise RethinkError(f"{self.path} is empty: no run has been stored in it yet.")
            writable_dir = os.access(self.path.parent.resolve(), os.W_OK)
            mode = "ro" if writable_dir else "ro&immutable=1"  # a read-only mount: no -shm
            uri = f"file:{self.path.resolve()}?mode={mode}"
            self._open_checked(uri, uri=True)
        else:
            if self.path.parent and not self.path.parent.exists():
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    raise RethinkError(
                        f"cannot create the folder of the store {self.path} ({err.strerror})."
                    ) from None
            existed = self.path.is_file() and self.path.stat().st_size > 0
            if existed and not os.access(self.path.parent.resolve(), os.W_OK):
                raise RethinkError(
                    f"the store {self.path} is on a read-only file system; "
                    "reading commands work, writing ones need a writable copy."
                )
            # an existing file: never add our tables to somebody else's (or a damaged) database
            self._open_checked(str(self.path), check=existed)
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                with self._tx() as db:
                    db.executescript(_SCHEMA)
                    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                    cols = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
                    if "provenance" not in cols:  # a 0.1 store: add the column
                        db.execute("ALTER TABLE runs ADD COLUMN provenance TEXT")
            except sqlite3.DatabaseError as err:
                self._db.close()
                low = str(err).lower()
                if "readonly" in low or "read-only" in low:
                    raise RethinkError(
                        f"the store {self.path} is read-only; "
                        "reading commands work, writing ones need a writable copy."
                    ) from None
                if "full" in low:
                    raise RethinkError(
                        f"the device holding {self.path} is full; free some space and retry."
                    ) from None
                raise RethinkError(f"{self.path} is not a rethink store ({err}).") from None
            _check_schema(self._db, self.path)

    def _open_checked(self, target: str, *, uri: bool = False, check: bool = True) -> None:
        """Connect; with `check`, refuse a foreign or damaged file, closing the connection and
        removing the -wal / -shm files the refused open created."""
        sidecars = [self.path.with_name(self.path.name + s) for s in ("-wal", "-shm")]
        new = [p for p in sidecars if not p.exists()]
        self._db = _connect(target, uri=uri)
        if not check:
            return
        try:
            _check_schema(self._db, self.path)
            _check_integrity(self._db, self.path)
        except RethinkError:
            self._db.close()
            for p in new:
                p.unlink(missing_ok=True)
            raise

    # ---- housekeeping -------------------------------------------------------------------
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        """The open SQLite connection (for modules that keep their own tables in the store:
        rethink.dynamics, rethink.measures). Write inside `with store.db:`."""
        return self._db

    @property
    def checkpoint_dir(self) -> Path:
        return self.path.with_name(self.path.name + ".ckpt")

    def checkpoint_path(self, run_id: str) -> Path:
        return self.checkpoint_dir / f"{run_id}.pt"

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise RethinkError(f"the store {self.path} was opened read-only.")
        with self._db:  # commits, or rolls back on error
            yield self._db

    # ---- writing ------------------------------------------------------------------------
    def begin_run(
        self,
        run_id: str,
        spec: dict[str, Any],
        *,
        sweep: str | None = None,
        label: str | None = None,
    ) -> None:
        """Record the spec (first time) and mark the run running; keeps existing epochs."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs (run_id, spec, status, created, started, host, versions, "
                "sweep, label) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(run_id) DO UPDATE SET status='running', started=excluded.started,"
                " host=excluded.host, versions=excluded.versions, error=NULL, finished=NULL,"
                " sweep=COALESCE(excluded.sweep, runs.sweep)",
                (
                    run_id,
                    json.dumps(spec, sort_keys=True),
                    now,
                    now,
                    socket.gethostname(),
                    json.dumps(versions()),
                    sweep,
                    label,
                ),
            )
            db.execute("DELETE FROM results WHERE run_id = ?", (run_id,))

    def append_epoch(self, run_id: str, record: dict[str, Any]) -> None:
        """Write one epoch's metrics; writing an epoch again replaces it (a resumed run)."""
        known = {k: record.get(k) for k in EPOCH_COLUMNS}
        extra = {k: v for k, v in record.items() if k not in EPOCH_COLUMNS}
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO epochs (run_id, {', '.join(EPOCH_COLUMNS)}, extra) "
                f"VALUES (?, {', '.join('?' * len(EPOCH_COLUMNS))}, ?)",
                (run_id, *known.values(), json.dumps(extra, sort_keys=True)),
            )

    def set_provenance(self, run_id: str, provenance: dict[str, Any]) -> None:
        """Record where and how the run computes (rethink.lifecycle.provenance)."""
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET provenance = ? WHERE run_id = ?",
                (json.dumps(provenance, sort_keys=True, default=str), run_id),
            )

    def truncate_epochs(self, run_id: str, after_epoch: int) -> None:
        """Forget epochs after `after_epoch` (they will be recomputed from a checkpoint)."""
        with self._tx() as db:
            db.execute("DELETE FROM epochs WHERE run_id = ? AND epoch > ?", (run_id, after_epoch))

    def finish(
        self,
        run_id: str,
        status: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Close a run with its final status and, if given, its result row."""
        if status not in STATUSES:
            raise ValueError(f"bad status {status}")
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished = ?, error = ? WHERE run_id = ?",
                (status, time.time(), error, run_id),
            )
            if result is not None:
                known = {k: result.get(k) for k in RESULT_COLUMNS}
                known["status"] = status
                extra = {k: v for k, v in result.items() if k not in RESULT_COLUMNS}
                db.execute(
                    f"INSERT OR REPLACE INTO results (run_id, {', '.join(RESULT_COLUMNS)}, "
                    f"extra) VALUES (?, {', '.join('?' * len(RESULT_COLUMNS))}, ?)",
                    (run_id, *known.values(), json.dumps(extra, sort_keys=True)),
                )

    # ---- reading ------------------------------------------------------------------------
    def get_run(self, run_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _run_row(row) if row else None

    def runs(self, *, status: str | None = None, sweep: str | None = None) -> list[dict]:
        """All runs (oldest first), each with its spec parsed and its result if any."""
        q, args = "SELECT * FROM runs", []
        conds = []
        if status:
            conds.append("status = ?")
            args.append(status)
        if sweep:
            conds.append("sweep = ?")
            args.append(sweep)
        if conds:
            q += " WHERE " + " AND ".join(conds)
        rows = self._db.execute(q + " ORDER BY created, run_id", args).fetchall()
        results = {r["run_id"]: r for r in self.results()}
        out = []
        for row in rows:
            run = _run_row(row)
            run["result"] = results.get(run["run_id"])
            out.append(run)
        return out

    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
        ).fetchall()
        return [_with_extra(r) for r in rows]

    def all_epochs(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM epochs ORDER BY run_id, epoch").fetchall()
        return [_with_extra(r) for r in rows]

    def results(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM results ORDER BY run_id").fetchall()
        return [_with_extra(r) for r in rows]

    def epoch_numbers(self, run_id: str) -> list[int]:
        """The epochs stored for a run, in order."""
        rows = self._db.execute(
            "SELECT epoch FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
        ).fetchall()
        return [r[0] for r in rows]

    def last_epoch(self, run_id: str) -> int | None:
        row = self._db.execute(
            "SELECT MAX(epoch) FROM epochs WHERE run_id = ?", (run_id,)
        ).fetchone()
        return row[0]

    # ---- forgetting ---------------------------------------------------------------------
    def resolve(self, key: str) -> str:
        """The run id that `key` names: a whole run id, or a prefix of exactly one."""
        key = key.strip()
        if not key:
            raise RethinkError("an empty run id; `rethink runs` lists them.")
        rows = [
            r[0]
            for r in self._db.execute(
                "SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY run_id",
                (len(key), key),
            )
        ]
        if key in rows:
            return key
        if len(rows) == 1:
            return rows[0]
        if not rows:
            where = f"the store {self.path}"
            raise RethinkError(f"{where} has no run {key}; `rethink runs` lists them.")
        raise RethinkError(f"'{key}' matches {len(rows)} runs in {self.path}; give more of it.")

    def forget(self, run_ids: list[str]) -> dict[str, int]:
        """Delete the rows of runs and of everything kept of them (epochs, result, per-example
        records, measures) in one transaction; run_id -> epochs deleted. Their checkpoint files
        are the caller's (rethink.lifecycle.forget holds the run locks and removes them)."""
        tables = {
            r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        keyed = [t for t in ("example_epochs", "example_runs", "measures") if t in tables]
        counts = {}
        with self._tx() as db:
            for rid in run_ids:
                n = db.execute("DELETE FROM epochs WHERE run_id = ?", (rid,)).rowcount
                for table in (*keyed, "results", "runs"):
                    db.execute(f"DELETE FROM {table} WHERE run_id = ?", (rid,))
                counts[rid] = n
        return counts


def statuses(path: str | os.PathLike) -> dict[str, str]:
    """run_id -> status of the store at `path` ({} when there is none), read through a
    query-only connection that leaves nothing beside the file (a read-only SQLite connection
    would leave -wal / -shm). Raises RethinkError for a file that is no rethink store."""
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        return {}
    db = _connect(str(p))
    try:
        db.execute("PRAGMA query_only = 1")
        _check_schema(db, p)
        return {r[0]: r[1] for r in db.execute("SELECT run_id, status FROM runs")}
    except sqlite3.DatabaseError as err:
        raise RethinkError(f"{p} is not a rethink store ({err}).") from None
    finally:
        db.close()


def _connect(target: str, uri: bool = False) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(target, uri=uri, timeout=30.0, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 30000")
    except sqlite3.Error as err:
        raise RethinkError(f"cannot open the store {target} ({err}).") from None
    db.isolation_level = "DEFERRED"
    db.row_factory = sqlite3.Row
    return db


def _check_schema(db: sqlite3.Connection, path: Path) -> None:
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.DatabaseError as err:
        if "malformed" in str(err).lower():
            raise RethinkError(_damaged(path)) from None
        raise RethinkError(f"{path} is not a rethink store ({err}).") from None
    if row is None or row[0] != SCHEMA_VERSION:
        raise RethinkError(f"{path} is not a rethink store of schema {SCHEMA_VERSION}.")


def _check_integrity(db: sqlite3.Connection, path: Path) -> None:
    """SQLite's quick_check (reads every page once; milliseconds for a store of MBs)."""
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError:
        raise RethinkError(_damaged(path)) from None
    if [tuple(r) for r in rows] != [("ok",)]:
        raise RethinkError(_damaged(path))


def _damaged(path: Path) -> str:
    return (
        f"the store {path} is damaged (SQLite's integrity check fails); nothing was written. "
        f"Recover what it holds with: sqlite3 {path} .recover | sqlite3 recovered.db"
    )


def _run_row(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["spec"] = json.loads(d["spec"])
    d["versions"] = json.loads(d["versions"]) if d.get("versions") else {}
    d["provenance"] = json.loads(d["provenance"]) if d.get("provenance") else {}
    return d


def _with_extra(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    extra = d.pop("extra", None)
    if extra:
        d.update(json.loads(extra))
    return d


def flatten_spec(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 0.1}} -> {"train.lr": 0.1}: a stored spec as dotted columns."""
    out: dict[str, Any] = {}
    for k, v in spec.items():
        if isinstance(v, dict):
            out.update(flatten_spec(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
