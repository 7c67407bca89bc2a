"""Per-example records in the run's SQLite store, beside the epoch rows.

Two tables, created on first use (`ensure_schema`):

- example_runs(run_id, n, labels, clean_labels, changed, threshold): once per run, at its
  start: the labels the run trains on, the true labels, which of them a corruption changed,
  and (optional) which examples are AUM threshold samples (rethink.dynamics.threshold_samples).
- example_epochs(run_id, epoch, field, data): one compressed blob per field (correct, margin,
  loss, pred; see rethink.dynamics._arrays) and recorded epoch. Writing an epoch again
  replaces it, so a resumed run that calls `truncate(db, run_id, checkpoint_epoch)` and then
  rewrites the epochs after its checkpoint ends with every epoch exactly once.

A blob is zlib (level 6) of the array in .npy format (dtype and shape in its header, read back
with allow_pickle=False). Every write is one transaction (`with db:`), so a killed process
leaves whole epochs or nothing. Size (measured, bench/dynamics_records.py): 50,000 examples x
100 epochs of a real CIFAR-10 (JPEG) run take about 20 MB; see docs/dynamics.md.
"""

from __future__ import annotations

import io
import sqlite3
import zlib
from typing import Any

import numpy as np

from rethink.dynamics._arrays import FIELDS
from rethink.errors import RethinkError

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS example_runs (run_id TEXT PRIMARY KEY, n INTEGER NOT NULL, "
    "labels BLOB NOT NULL, clean_labels BLOB NOT NULL, changed BLOB NOT NULL, threshold BLOB)",
    "CREATE TABLE IF NOT EXISTS example_epochs (run_id TEXT NOT NULL, epoch INTEGER NOT NULL, "
    "field TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (run_id, epoch, field))",
)
_ZLIB_LEVEL = 6


def encode(arr: np.ndarray) -> bytes:
    """zlib-compressed .npy bytes of `arr`."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return zlib.compress(buf.getvalue(), _ZLIB_LEVEL)


def decode(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(zlib.decompress(blob)), allow_pickle=False)


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the two tables if they are missing (idempotent)."""
    with db:
        _create(db)


def _create(db: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        db.execute(statement)


def has_records(db: sqlite3.Connection) -> bool:
    """Whether this store has the example tables at all (never creates them)."""
    row = db.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'example_runs'"
    ).fetchone()
    return bool(row[0])


def _vector(name: str, value: Any, n: int | None, dtype: Any) -> np.ndarray:
    arr = np.asarray(value.cpu() if hasattr(value, "cpu") else value)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        want = f"({n},)" if n is not None else "one-dimensional"
        raise ValueError(f"{name} must be {want}, got shape {arr.shape}")
    return arr.astype(dtype, copy=False)


def write_run_arrays(
    db: sqlite3.Connection,
    run_id: str,
    labels: Any,
    clean_labels: Any,
    changed: Any,
    threshold: Any = None,
) -> None:
    """Record the run's labels (N,), true labels (N,), changed mask (N,) and optionally the
    threshold-sample mask (N,); writing them again replaces them (a resumed run)."""
    y = _vector("labels", labels, None, np.int64)
    n = y.shape[0]
    arrays = [
        y.astype(np.int32),
        _vector("clean_labels", clean_labels, n, np.int32),
        _vector("changed", changed, n, bool),
    ]
    thr = None if threshold is None else encode(_vector("threshold", threshold, n, bool))
    with db:
        _create(db)
        db.execute(
            "INSERT OR REPLACE INTO example_runs VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, n, *(encode(a) for a in arrays), thr),
        )


def _run_size(db: sqlite3.Connection, run_id: str) -> int | None:
    if not has_records(db):
        return None
    row = db.execute("SELECT n FROM example_runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else int(row[0])


def write_epoch(db: sqlite3.Connection, run_id: str, epoch: int, arrays: dict[str, Any]) -> None:
    """Store one epoch's arrays (the four FIELDS, each (N,)); replaces that epoch if present.
    write_run_arrays must have been called for the run first."""
    n = _run_size(db, run_id)
    if n is None:
        raise RethinkError(f"run {run_id} has no example records; write its run arrays first.")
    missing = [f for f in FIELDS if f not in arrays]
    if missing:
        raise ValueError(f"write_epoch needs the fields {', '.join(FIELDS)}; missing {missing}")
    blobs = []
    for f in FIELDS:
        arr = np.asarray(arrays[f])
        if arr.shape != (n,):
            raise ValueError(f"{f} must have shape ({n},) for run {run_id}, got {arr.shape}")
        blobs.append((run_id, int(epoch), f, encode(arr)))
    with db:
        db.execute(
            "DELETE FROM example_epochs WHERE run_id = ? AND epoch = ?", (run_id, int(epoch))
        )
        db.executemany("INSERT INTO example_epochs VALUES (?, ?, ?, ?)", blobs)


def truncate(db: sqlite3.Connection, run_id: str, after_epoch: int) -> None:
    """Forget the epochs after `after_epoch` (a resumed run recomputes them)."""
    if not has_records(db):
        return
    with db:
        db.execute(
            "DELETE FROM example_epochs WHERE run_id = ? AND epoch > ?", (run_id, int(after_epoch))
        )


def record_runs(db: sqlite3.Connection) -> list[str]:
    """The run_ids with example records, in the order they were first recorded."""
    if not has_records(db):
        return []
    return [r[0] for r in db.execute("SELECT run_id FROM example_runs ORDER BY rowid")]


def load(db: sqlite3.Connection, run_id: str) -> dict[str, np.ndarray]:
    """A run's records: epochs (E,) int64 ascending; correct, margin, loss, pred (E, N), row i
    = epoch epochs[i]; labels, clean_labels (N,) int64; changed (N,) bool; threshold (N,) bool
    (all False when the run has no threshold samples)."""
    row = None
    if has_records(db):
        row = db.execute(
            "SELECT n, labels, clean_labels, changed, threshold FROM example_runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()
    if row is None:
        raise RethinkError(
            f"run {run_id} has no example records (train it with train.record_examples = true)."
        )
    n = int(row[0])
    out: dict[str, np.ndarray] = {
        "labels": decode(row[1]).astype(np.int64),
        "clean_labels": decode(row[2]).astype(np.int64),
        "changed": decode(row[3]).astype(bool),
        "threshold": decode(row[4]).astype(bool) if row[4] is not None else np.zeros(n, bool),
    }
    rows = db.execute(
        "SELECT epoch, field, data FROM example_epochs WHERE run_id = ? ORDER BY epoch",
        (run_id,),
    ).fetchall()
    by_epoch: dict[int, dict[str, bytes]] = {}
    for epoch, field, data in rows:
        by_epoch.setdefault(int(epoch), {})[field] = data
    epochs = sorted(by_epoch)
    out["epochs"] = np.asarray(epochs, dtype=np.int64)
    for f in FIELDS:
        if epochs:
            out[f] = np.stack([decode(by_epoch[e][f]) for e in epochs])
        else:
            dtype = {"correct": bool, "margin": np.float16, "loss": np.float16}.get(f, np.uint8)
            out[f] = np.zeros((0, n), dtype=dtype)
    return out


def size_bytes(db: sqlite3.Connection, run_id: str) -> int:
    """Bytes of compressed blobs a run's records take (the store adds a few % of pages)."""
    if not has_records(db):
        return 0
    a = db.execute(
        "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM example_epochs WHERE run_id = ?", (run_id,)
    ).fetchone()[0]
    b = db.execute(
        "SELECT COALESCE(SUM(LENGTH(labels) + LENGTH(clean_labels) + LENGTH(changed) + "
        "COALESCE(LENGTH(threshold), 0)), 0) FROM example_runs WHERE run_id = ?",
        (run_id,),
    ).fetchone()[0]
    return int(a) + int(b)
