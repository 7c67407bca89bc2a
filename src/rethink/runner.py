"""Running one RunSpec: `execute` computes, `run` also records it in a Store and resumes.

    >>> from rethink.spec import RunSpec
    >>> from rethink import runner
    >>> spec = RunSpec.from_dict({"dataset": "mnist-5k", "labels": "random-labels",
    ...                           "model.name": "mlp-1x512", "until_fit": True})
    >>> result = runner.run(spec, store="runs.db")        # doctest: +SKIP
    >>> result["status"], result["epochs_to_fit"]         # doctest: +SKIP

`execute` is pure compute (no store): it loads the dataset (cached per process), prepares it
(preprocessing and the spec's corruption), builds the model and calls `rethink.train.fit`.
`run` validates everything and loads the data before it writes a byte, skips a run that is
already finished or diverged, resumes an unfinished one from its last checkpoint (written
atomically beside the store), appends each epoch as it ends, and closes the run with its
result, or as failed / interrupted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rethink.device import resolve_device
from rethink.errors import RethinkError
from rethink.spec import RunSpec
from rethink.store import DONE, Store
from rethink.train import OnCheckpoint, OnEpoch, Progress, derive_seed, fit

_DATA_CACHE: dict[tuple, Any] = {}
_DATA_CACHE_SIZE = 4  # datasets kept per process (a sweep reuses the same one many times)


def load_dataset(spec: RunSpec, data_dir: str | os.PathLike | None = None) -> Any:
    """rethink.data.load for the spec's data section, cached per process."""
    from rethink import data

    d = spec.data
    key = (d.dataset, str(data_dir) if data_dir else None, d.train_size, d.subset_seed)
    if key not in _DATA_CACHE:
        ds = data.load(
            d.dataset, data_dir=data_dir, train_size=d.train_size, subset_seed=d.subset_seed
        )
        while len(_DATA_CACHE) >= _DATA_CACHE_SIZE:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = ds
    return _DATA_CACHE[key]


@dataclass
class Job:
    """Everything a run needs, built and validated before anything is written."""

    spec: RunSpec  # normalized
    run_id: str
    data: Any  # rethink.data.Prepared
    model: nn.Module
    device: torch.device
    params: int


def setup(
    spec: RunSpec,
    *,
    data_dir=None,
    device: str | torch.device = "auto",
    compile: bool | None = None,
) -> Job:
    """Validate the spec, pick the device, load + prepare the data and build the model.

    compile: torch.compile the model (None: rethink.models.optimize_for_training decides;
    it compiles on CUDA only)."""
    from rethink import data, models

    spec = spec.normalized()
    dev = resolve_device(device)
    c = spec.corruption
    prepared = data.prepare(
        load_dataset(spec, data_dir),
        preprocess=spec.data.preprocess,
        corruption=c.kind,
        corrupt_prob=c.prob,
        seed=spec.seed,
        corrupt_test=c.corrupt_test,
    )
    model = models.build(
        spec.model.name,
        tuple(prepared.input_shape),
        prepared.num_classes,
        dropout=spec.model.dropout,
        seed=derive_seed(spec.seed, "init"),
    )
    params = models.count_params(model)
    optimize = getattr(models, "optimize_for_training", None)
    if optimize is not None:
        model = optimize(model, dev, compile=compile)
    return Job(spec, spec.run_id(), prepared, model, dev, params)


def execute(
    spec: RunSpec | Job,
    *,
    data_dir=None,
    device: str | torch.device = "auto",
    resume: dict[str, Any] | None = None,
    on_epoch: OnEpoch | None = None,
    on_checkpoint: OnCheckpoint | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Progress | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train one run, no store. Returns the result dict (see rethink.train.fit) plus run_id,
    params, device and the corruption's realized fraction. `resume` is a state given
    earlier to on_checkpoint (it must belong to the same run_id). `threads` sets torch's
    intra-op CPU threads for this call (None: leave as is); it is not part of the spec."""
    job = spec if isinstance(spec, Job) else setup(spec, data_dir=data_dir, device=device)
    with cpu_threads(threads):
        return _execute(job, resume, on_epoch, on_checkpoint, should_stop, progress)


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` intra-op CPU threads, then restore the previous count."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise RethinkError(f"--threads must be a positive integer, not {threads}.")
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _execute(job, resume, on_epoch, on_checkpoint, should_stop, progress) -> dict[str, Any]:
    if resume is not None and resume.get("run_id", job.run_id) != job.run_id:
        raise RethinkError("the checkpoint to resume from belongs to another run.")

    def checkpoint(epoch: int, state: dict[str, Any]) -> None:
        if on_checkpoint is not None:
            on_checkpoint(epoch, {**state, "run_id": job.run_id, "spec": job.spec.to_dict()})

    result = fit(
        job.model,
        job.data,
        job.spec.train,
        seed=job.spec.seed,
        device=job.device,
        resume=resume,
        on_epoch=on_epoch,
        on_checkpoint=checkpoint,
        should_stop=should_stop,
        progress=progress,
    )
    result.update(run_id=job.run_id, params=job.params, device=str(job.device))
    realized = getattr(job.data, "realized_fraction", None)
    if realized is not None:
        result["realized_fraction"] = float(realized)
    return result


def run(
    spec: RunSpec,
    *,
    store: Store | str | os.PathLike,
    data_dir=None,
    device: str | torch.device = "auto",
    sweep: str | None = None,
    progress: Progress | None = None,
    on_epoch: OnEpoch | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run `spec` into `store`, resuming or skipping as needed; returns the result dict
    (with "skipped": True when the store already held a finished or diverged result)."""
    spec = spec.normalized()
    if threads is not None and threads < 1:
        raise RethinkError(f"--threads must be a positive integer, not {threads}.")
    run_id = spec.run_id()
    done = _stored_result(store, run_id)
    if done is not None:
        return done
    job = setup(spec, data_dir=data_dir, device=device)  # every check before the first write
    st = store if isinstance(store, Store) else Store(store)
    try:
        with cpu_threads(threads):
            return _run_job(job, st, sweep, progress, on_epoch)
    finally:
        if st is not store:
            st.close()


def _run_job(job: Job, st: Store, sweep, progress, on_epoch) -> dict[str, Any]:
    rid = job.run_id
    st.begin_run(rid, job.spec.to_dict(), sweep=sweep, label=job.spec.describe())
    ckpt = st.checkpoint_path(rid)
    resume = load_checkpoint(ckpt, rid)
    st.truncate_epochs(rid, resume["epoch"] if resume else -1)

    def epoch_done(rec: dict[str, Any]) -> None:
        st.append_epoch(rid, rec)
        if on_epoch is not None:
            on_epoch(rec)

    try:
        result = execute(
            job,
            resume=resume,
            on_epoch=epoch_done,
            on_checkpoint=lambda epoch, state: save_checkpoint(ckpt, state),
            progress=progress,
        )
    except KeyboardInterrupt:
        st.finish(rid, "interrupted", error="interrupted by the user")
        raise
    except BaseException as err:
        st.finish(rid, "failed", error=_one_line(err))
        raise
    result["resumed_from"] = resume["epoch"] if resume else None
    st.finish(rid, result["status"], result)
    return result


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save `state` to `path` atomically (a temporary file, then a rename).

    The last checkpoint of a finished or diverged run (state["final"]) is never resumed, so
    it keeps the model and bookkeeping but not the optimizer's momentum (half the size)."""
    if state.get("final") in ("finished", "diverged"):
        state = {k: v for k, v in state.items() if k != "optimizer"}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, run_id: str) -> dict[str, Any] | None:
    """The state saved at `path` for `run_id`, or None if there is none (or it is unusable)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign file: start the run again rather than fail
        return None
    if not isinstance(state, dict) or state.get("run_id") != run_id:
        return None
    if state.get("final"):  # the run ended but was not closed in the store: run it again
        return None
    return state


def _stored_result(store: Store | str | os.PathLike, run_id: str) -> dict[str, Any] | None:
    if isinstance(store, Store):
        return _done_result(store, run_id)
    if not Path(store).is_file():
        return None
    with Store(store, readonly=True) as st:
        return _done_result(st, run_id)


def _done_result(st: Store, run_id: str) -> dict[str, Any] | None:
    row = st.get_run(run_id)
    if row is None or row["status"] not in DONE:
        return None
    for r in st.results():
        if r["run_id"] == run_id:
            return {**r, "skipped": True}
    return None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text}"[:500]
