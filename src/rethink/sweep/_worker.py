"""What runs inside a worker (the driver's own process, a local process or a Ray task).

A worker computes one run with `execute` and reports everything back as messages; it never
opens the store (the driver records them through rethink.lifecycle.Recorder). Messages are
tuples:
    ("start", run_id, pid)                  the run began in process pid
    ("setup", run_id, provenance, arrays)   set up: where and how it computes; arrays for
                                            per-example records (or None)
    ("restart", run_id, why)                the checkpoint did not fit: started over
    ("epoch", run_id, metrics, examples)    one finished epoch's metrics (dict) and its
                                            per-example arrays (or None)
    ("ckpt", run_id, epoch, bytes)          a checkpoint: torch.save(state) bytes, the same
                                            file format as `rethink run` writes
    ("done", run_id, result)                the result dict (its status from the engine)
    ("error", run_id, message)              the run failed; message is one line
Checkpoints travel as bytes so they need no shared file system or shared memory. With a
`deadline` (a sweep's time budget, as time.time()) the run stops at the first epoch end past it,
that epoch checkpointed, and reports "done" with status "interrupted".
"""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rethink.lifecycle import dump_checkpoint, past, read_checkpoint

Send = Callable[[tuple], None]
DEFAULT_EXECUTE = "rethink.runner:execute"


def resolve_execute(path: str) -> Callable[..., dict]:
    """'package.module:function' -> the function."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def load_checkpoint(blob: bytes | str | os.PathLike | None) -> dict | None:
    """A checkpoint (bytes or a file path) -> the state to resume, or None."""
    if blob is None:
        return None
    return read_checkpoint(blob if isinstance(blob, bytes) else Path(blob))


def run_one(
    task: tuple[str, dict, bytes | str | None],
    send: Send,
    *,
    execute: str = DEFAULT_EXECUTE,
    data_dir: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    deadline: float | None = None,
) -> None:
    """Compute one run and report it through `send`; only KeyboardInterrupt escapes.
    `deadline` is handed to `execute` as should_stop (only when given, so an `execute` of
    one's own needs that argument only for sweeps with a time budget)."""
    from rethink.errors import RethinkError
    from rethink.spec import RunSpec

    run_id, spec_dict, resume = task
    send(("start", run_id, os.getpid()))
    try:
        from rethink.runner import cpu_threads  # the run's threads; the caller's come back

        fn = resolve_execute(execute)
        state = load_checkpoint(resume)
        spec = RunSpec.from_dict(spec_dict)

        def on_epoch(record: Any) -> None:
            send(("epoch", run_id, record.metrics(), record.examples))

        def on_checkpoint(epoch: int, state: dict) -> None:
            send(("ckpt", run_id, int(epoch), dump_checkpoint(state)))

        budget = {} if deadline is None else {"should_stop": past(deadline)}

        with cpu_threads(threads):
            result = fn(
                spec,
                data_dir=data_dir,
                device=device,
                resume=state,
                on_start=lambda prov, arrays: send(("setup", run_id, prov, arrays)),
                on_epoch=on_epoch,
                on_checkpoint=on_checkpoint,
                on_restart=lambda why: send(("restart", run_id, why)),
                **budget,
            )
        send(("done", run_id, dict(result)))
    except KeyboardInterrupt:
        raise
    except RethinkError as err:
        send(("error", run_id, str(err)))
    except Exception as err:  # one run's failure is recorded; the sweep goes on
        last = traceback.extract_tb(err.__traceback__)[-1]
        where = f" at {Path(last.filename).name}:{last.lineno}"
        send(("error", run_id, f"{type(err).__name__}: {err}{where}"))
