"""Running one RunSpec: `execute` computes, `run` also records it in a Store and resumes.

    >>> from rethink.spec import RunSpec
    >>> from rethink import runner
    >>> spec = RunSpec.from_dict({"dataset": "mnist-5k", "labels": "random-labels",
    ...                           "model.name": "mlp-1x512", "until_fit": True})
    >>> result = runner.run(spec, store="runs.db")        # doctest: +SKIP
    >>> result["status"], result["epochs_to_fit"]         # doctest: +SKIP

`setup` validates the spec, loads the dataset (rethink.data.load caches it per process),
prepares it (preprocessing and the spec's corruption) and builds the model. `execute` is pure
compute (no store): it iterates `rethink.train.fit` and decides when to stop (until-fit,
`should_stop`, divergence), handing every record and checkpoint to callbacks. `run` checks
everything before it writes a byte and records the run through rethink.lifecycle.Recorder,
the one way a run gets into a store (lock, resume, epochs, checkpoints, result).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rethink.device import resolve_device
from rethink.errors import RethinkError
from rethink.lifecycle import (
    DiskFull,
    Recorder,
    check_state_fits,
    provenance,
    stderr_notice,
    time_budget,
)
from rethink.spec import RunSpec, derive_seed
from rethink.store import DONE, Store
from rethink.train import EpochRecord, Progress, fit, result_of

OnEpoch = Callable[[EpochRecord], None]
OnCheckpoint = Callable[[int, dict[str, Any]], None]
OnStart = Callable[[dict[str, Any], "dict[str, Any] | None"], None]


def load_dataset(spec: RunSpec, data_dir: str | os.PathLike | None = None) -> Any:
    """rethink.data.load for the spec's data section (cached per process by rethink.data)."""
    from rethink import data

    d = spec.data
    return data.load(
        d.dataset, data_dir=data_dir, train_size=d.train_size, subset_seed=d.subset_seed
    )


@dataclass
class Job:
    """Everything a run needs, built and validated before anything is written."""

    spec: RunSpec  # normalized
    run_id: str
    data: Any  # rethink.data.Prepared
    model: nn.Module
    device: torch.device
    params: int
    threshold: torch.Tensor | None = None  # (N,) bool: AUM threshold samples, if any


def setup(
    spec: RunSpec,
    *,
    data_dir=None,
    device: str | torch.device = "auto",
    compile: bool | None = None,
) -> Job:
    """Validate the spec, pick the device, load + prepare the data and build the model (its
    initial weights drawn with derive_seed(seed, "init")).

    compile: torch.compile the model (None: rethink.models.optimize_for_training decides;
    it compiles on CUDA only)."""
    from rethink import data, models

    spec = spec.normalized()
    dev = resolve_device(device)
    c = spec.corruption
    kwargs: dict[str, Any] = {"data_dir": data_dir}  # where CIFAR-10N labels are found too
    if c.matrix is not None:
        kwargs["matrix"] = c.matrix
    prepared = data.prepare(
        load_dataset(spec, data_dir),
        preprocess=spec.data.preprocess,
        corruption=c.kind,
        corrupt_prob=c.prob,
        seed=spec.seed,
        corrupt_test=c.corrupt_test,
        **kwargs,
    )
    threshold = None
    if c.threshold_samples:  # AUM: an extra class of randomly drawn training examples
        import dataclasses

        from rethink.dynamics import threshold_samples

        g = torch.Generator().manual_seed(derive_seed(spec.seed, "threshold"))
        y, threshold = threshold_samples(prepared.y_train, prepared.num_classes, g)
        prepared = dataclasses.replace(prepared, y_train=y, num_classes=prepared.num_classes + 1)
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
    return Job(spec, spec.run_id(), prepared, model, dev, params, threshold)


def check(specs: list[RunSpec], *, data_dir=None, device: str | torch.device = "auto") -> None:
    """Every check `setup` makes, for many specs, before any of them runs (a sweep): each
    distinct data / corruption / model combination is set up once."""
    seen = set()
    for spec in specs:
        s = spec.normalized()
        key = (s.data, s.corruption, s.model)
        if key in seen:
            continue
        seen.add(key)
        setup(s, data_dir=data_dir, device=device)


def execute(
    spec: RunSpec | Job,
    *,
    data_dir=None,
    device: str | torch.device = "auto",
    resume: dict[str, Any] | None = None,
    on_start: OnStart | None = None,
    on_epoch: OnEpoch | None = None,
    on_checkpoint: OnCheckpoint | None = None,
    on_restart: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Progress | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train one run, no store; returns the result dict (rethink.train.result_of) plus run_id,
    params, device and the corruption's realized fraction.

    on_start(provenance, arrays) once set up (arrays: labels / clean_labels / changed when the
    run records per-example dynamics); on_epoch(EpochRecord) after every epoch;
    on_checkpoint(epoch, state) every train.checkpoint_every epochs, when stopping early and
    at the end (state["final"] = the status: that last one is never resumed); on_restart(why)
    when `resume` does not fit the model (the run then starts over). `threads` sets torch's
    intra-op CPU threads for this call (None: leave as is); provenance records the count."""
    job = spec if isinstance(spec, Job) else setup(spec, data_dir=data_dir, device=device)
    with cpu_threads(threads):
        return _execute(job, resume, on_start, on_epoch, on_checkpoint, on_restart, should_stop,
                        progress)  # fmt: skip


def check_threads(threads: int | None) -> None:
    """Refuse a thread count below 1 (None: leave torch's count as it is)."""
    if threads is not None and threads < 1:
        raise RethinkError(f"--threads must be a positive integer, not {threads}.")


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` intra-op CPU threads, then restore the previous count."""
    check_threads(threads)
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _execute(job, resume, on_start, on_epoch, on_checkpoint, on_restart, should_stop, progress):
    spec, train = job.spec, job.spec.train
    if resume is not None and resume.get("run_id", job.run_id) != job.run_id:
        raise RethinkError("the checkpoint to resume from belongs to another run.")
    if resume is not None:
        why = check_state_fits(resume, job.model)
        if why is not None:
            if on_restart is None:
                raise RethinkError(f"the checkpoint to resume from {why}.")
            on_restart(why)
            resume = None
    if on_start is not None:
        on_start(provenance(device=job.device, data=job.data, spec=spec), _arrays(job))
    tag = {"run_id": job.run_id, "spec": spec.to_dict()}

    def ckpt(epoch: int, state: dict[str, Any], final: str | None = None) -> None:
        if on_checkpoint is None:
            return
        state = {**state, **tag}
        if final is not None:
            state = {k: v for k, v in state.items() if k != "optimizer"}
            state["final"] = final
        on_checkpoint(epoch, state)

    status, last, final_state = "finished", None, None
    done_already = resume is not None and (
        resume["epoch"] >= train.max_epochs
        or (train.until_fit and resume.get("fit_epoch") is not None)
    )
    if done_already:  # killed between its last epoch and its result
        final_state, last = resume, resume
    else:
        records = fit(job.model, job.data, train, seed=spec.seed, device=job.device,
                      resume=resume, progress=progress)  # fmt: skip
        csr = _CSR(job) if train.record_examples else None
        with closing(records):  # closing restores the caller's global RNG state
            for rec in records:
                last = rec
                stop = None
                if rec.diverged:
                    stop = "diverged"
                elif train.until_fit and rec.fit_epoch is not None:
                    stop = "finished"
                elif rec.epoch >= train.max_epochs:
                    stop = "finished"
                if csr is not None and (rec.epoch in csr.epochs or stop is not None):
                    rec.extra.update(csr.measure(rec.epoch))
                if on_epoch is not None:
                    on_epoch(rec)
                if stop is None and should_stop is not None and should_stop():
                    stop = "interrupted"
                if stop == "interrupted" or (
                    stop is None and rec.epoch > 0 and rec.epoch % train.checkpoint_every == 0
                ):
                    ckpt(rec.epoch, rec.state())
                if stop is not None:
                    status = stop
                    if stop != "interrupted":
                        final_state = rec.state()
                    break
    if last is None:
        raise RethinkError("the run produced no epoch.")
    if final_state is not None:
        ckpt(final_state["epoch"], final_state, final=status)
    result = result_of(last, status)
    result.update(run_id=job.run_id, params=job.params, device=str(job.device))
    realized = getattr(job.data, "realized_fraction", None)
    if realized is not None:
        result["realized_fraction"] = float(realized)
    return result


class _CSR:
    """Critical sample ratio (rethink.dynamics) of a run that records per-example dynamics:
    at epochs 0, 1, 2, 4, 8, ..., the cap and the last epoch, on a fixed sample of 200 train
    and 200 test points, radius 2/255 of the pixel range (docs/dynamics.md)."""

    def __init__(self, job: Job):
        from rethink.dynamics import _csr

        self.mod, self.job = _csr, job
        d = job.data
        self.epochs = set(_csr.csr_epochs(job.spec.train.max_epochs))
        self.sample = _csr.csr_sample(len(d.y_train), len(d.y_test))
        raw = load_dataset(job.spec).x_train
        idx = self.sample[0][: len(raw)]
        unit = raw[idx].float() / 255.0
        model_x = d.x_train[idx.to(d.x_train.device)].cpu()
        self.radius = _csr.pixel_radius(_csr.CSR_PIXEL_RADIUS, unit, model_x)

    def measure(self, epoch: int) -> dict[str, float]:
        d = self.job.data
        return self.mod.csr_metrics(
            self.job.model, d.x_train, d.x_test, sample=self.sample, radius=self.radius,
            epoch=epoch, seed=self.job.spec.seed,
        )  # fmt: skip


def _arrays(job: Job) -> dict[str, Any] | None:
    """What per-example records need to be read later: the labels the run trained on, the
    clean labels and the changed mask (numpy arrays)."""
    if not job.spec.train.record_examples:
        return None
    d = job.data
    y = d.y_train.cpu().numpy()
    clean = getattr(d, "y_train_clean", None)
    changed = getattr(d, "changed", None)
    return {
        "labels": y,
        "clean_labels": y if clean is None else clean.cpu().numpy(),
        "changed": (y != y) if changed is None else changed.cpu().numpy().astype(bool),
        "threshold": None if job.threshold is None else job.threshold.cpu().numpy(),
    }


def run(
    spec: RunSpec,
    *,
    store: Store | str | os.PathLike,
    data_dir=None,
    device: str | torch.device = "auto",
    sweep: str | None = None,
    progress: Any = False,
    on_epoch: OnEpoch | None = None,
    threads: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    notice: Callable[[str], None] = stderr_notice,
    on_batch: Progress | None = None,
    stop_after: float | None = None,
) -> dict[str, Any]:
    """Run `spec` into `store`, resuming or skipping as needed; returns the result dict
    (with "skipped": True when the store already held a finished or diverged result, and
    "resumed_from": the checkpoint's epoch or None).

    progress: True (a display that suits where it runs: a rich bar with an ETA on a terminal,
    tqdm in Jupyter, one plain line per epoch otherwise), a mode name, False (silent) or a
    rethink.progress.RunProgress. on_epoch(EpochRecord): a callback after every epoch;
    on_batch(epoch, done, total): one inside epochs. should_stop(): asked after every epoch;
    true stops the run there, checkpointed, with status "interrupted" (running it again
    resumes). stop_after: a time budget in seconds from this call, the same way (the run
    stops at the first epoch end after it).

    Bad input (spec, data, model, a damaged store, another process training the same run)
    raises RethinkError before anything is written."""
    budget = time_budget(stop_after)  # checked (and started) before anything else
    if budget is not None:
        asked = should_stop
        should_stop = budget if asked is None else (lambda: budget() or asked())
    spec = spec.normalized()
    check_threads(threads)
    run_id = spec.run_id()
    job = setup(spec, data_dir=data_dir, device=device)  # every check before the store opens
    st = store if isinstance(store, Store) else Store(store)
    try:
        done = _done_result(st, run_id)  # finished already (or by another process meanwhile)
        if done is not None:
            return done
        if callable(progress) and not hasattr(progress, "epoch"):  # rethink 0.1: a batch callback
            on_batch, progress = progress, False
        from rethink.progress import run_progress

        disp = run_progress(progress, spec.describe(), spec.train.max_epochs)
        rec = Recorder(st, spec, sweep=sweep, notice=notice)
        resume = rec.begin()
        try:
            disp.start(rec.resumed_from)

            def shown(r: EpochRecord) -> None:
                disp.epoch(r)
                if on_epoch is not None:
                    on_epoch(r)

            result = _run_job(job, rec, resume, on_batch, shown, threads, should_stop)
            disp.end(result["status"], result)
            return result
        finally:
            disp.close()
    finally:
        if st is not store:
            st.close()


def _run_job(job, rec: Recorder, resume, progress, on_epoch, threads, should_stop):
    def epoch_done(r: EpochRecord) -> None:
        rec.epoch(r.metrics(), r.examples)
        if on_epoch is not None:
            on_epoch(r)

    try:
        result = execute(
            job,
            resume=resume,
            on_start=rec.started,
            on_epoch=epoch_done,
            on_checkpoint=lambda epoch, state: rec.checkpoint(state),
            on_restart=rec.restart,
            should_stop=should_stop,
            progress=progress,
            threads=threads,
        )
    except KeyboardInterrupt:
        rec.interrupt("interrupted by the user")
        raise
    except DiskFull:
        rec.close()  # already marked interrupted where the store could take it
        raise
    except RethinkError as err:
        rec.fail(str(err))
        raise
    except BaseException as err:
        rec.fail(_one_line(err))
        raise
    result["resumed_from"] = rec.resumed_from
    rec.finish(result["status"], result)
    return result


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
