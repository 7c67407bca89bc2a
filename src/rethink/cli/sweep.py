"""`rethink sweep` and `rethink reproduce`: run a grid of runs into a store (and report it)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from rethink.cli import app

_JOBS = typer.Option(1, "--jobs", "-j", help="Runs at once (local worker processes).")
_BACKEND = typer.Option("local", "--backend", help="local (this machine) or ray.")
_ADDRESS = typer.Option(None, "--address", help="An existing Ray cluster (with --backend ray).")
_DATA = typer.Option(None, "--data-dir", help="Where datasets are found (default: usual places).")
_DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or mps.")


@app.command("sweep")
def sweep_command(
    file: str = typer.Argument(..., help="A sweep TOML file (see docs/sweeps.md)."),
    store: str = typer.Option(None, "--store", help="Results store (default runs/<name>.db)."),
    scale: str = typer.Option(None, "--scale", help="smoke, cpu, paper... (default cpu)."),
    jobs: int = _JOBS,
    backend: str = _BACKEND,
    address: str = _ADDRESS,
    data_dir: str = _DATA,
    device: str = _DEVICE,
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs; run nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Run every run of a sweep file; finished runs are skipped, unfinished ones resume."""
    from rethink.sweep import load_sweep, preset_path

    plan = load_sweep(preset_path(file), scale=scale)
    _run(plan, store, jobs, backend, address, data_dir, device, dry_run, as_json)


@app.command("reproduce")
def reproduce_command(
    name: str = typer.Argument(..., help="A preset: fig1a, fig1bc, table1, table4, fig2."),
    scale: str = typer.Option("smoke", "--scale", help="smoke (seconds), cpu or paper (GPU)."),
    out: str = typer.Option(None, "--out", help="Report folder (default results/<name>-<scale>)."),
    store: str = typer.Option(None, "--store", help="Results store (default <out>/runs.db)."),
    jobs: int = _JOBS,
    backend: str = _BACKEND,
    address: str = _ADDRESS,
    data_dir: str = _DATA,
    device: str = _DEVICE,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Run a paper preset at a scale, then write its report (figures, tables, report.html)."""
    from rethink.report import write_report
    from rethink.sweep import load_sweep, preset_path

    plan = load_sweep(preset_path(name), scale=scale)
    out = Path(out) if out else Path("results") / plan.name
    store = Path(store) if store else out / "runs.db"
    summary = _run(plan, store, jobs, backend, address, data_dir, device, False, False)
    note = f"{plan.description} Preset {name}, scale {scale}."
    if plan.meta.get("expect"):
        note += f" Expected: {plan.meta['expect']}."
    if plan.meta.get("runtime"):
        note += f" Runtime: {plan.meta['runtime']}."
    if summary is not None:
        note += f" This sweep: {summary.finished} runs finished, {summary.skipped} skipped, "
        note += f"{summary.failed} failed in {summary.seconds:.0f} s."
    ids = [r.run_id for r in plan.runs]  # not runs of an older version of the preset
    written = write_report(store, out, sweeps=[plan.name], run_ids=ids, notes={plan.name: note})
    if summary is not None and not as_json:
        print(f"report: {out / 'report.html'} ({len(written)} files)")
    if as_json:
        d = summary.as_dict() if summary else {}
        print(json.dumps({**d, "store": str(store), "out": str(out), "files": len(written)}))


def _run(plan, store, jobs, backend, address, data_dir, device, dry_run, as_json):
    from rethink.sweep import default_store_path, run_sweep

    store = Path(store) if store else default_store_path(plan)
    if dry_run:
        for r in plan.runs:
            print(f"{r.run_id}  {r.label}")
        if as_json:
            print(json.dumps({"sweep": plan.name, "runs": [r.run_id for r in plan.runs]}))
        return None
    view = _Progress(plan, quiet=as_json)
    try:
        with view:
            summary = run_sweep(
                plan,
                store,
                jobs=jobs,
                backend=backend,
                address=address,
                data_dir=str(data_dir) if data_dir else None,
                device=device,
                on_event=view.event,
            )
    except KeyboardInterrupt:
        print(
            f"interrupted: the runs in flight are marked interrupted in {store}; "
            "run the same command again to resume them.",
            file=sys.stderr,
        )
        raise typer.Exit(130) from None
    if as_json:
        print(json.dumps({**summary.as_dict(), "store": str(store)}))
    else:
        _print_summary(summary, store)
    return summary


class _Progress:
    """A rich progress view on stderr: one bar for the sweep, one line per run in flight."""

    def __init__(self, plan, quiet: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            disable=quiet,
            transient=False,
        )
        self.total = self.progress.add_task(f"sweep {plan.name}", total=len(plan), info="")
        self.tasks: dict[str, int] = {}
        self.t0 = time.time()

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def event(self, kind: str, run, **kw) -> None:
        p = self.progress
        if kind == "start":
            epochs = run.spec.train.max_epochs
            self.tasks[run.run_id] = p.add_task(f"  {run.label[:48]}", total=epochs, info="")
        elif kind == "epoch" and run.run_id in self.tasks:
            r = kw["record"]
            info = f"train {r.get('train_acc', 0):.1%} test {r.get('test_acc', 0):.1%}"
            p.update(self.tasks[run.run_id], completed=r.get("epoch", 0), info=info)
        elif kind == "end":
            task = self.tasks.pop(run.run_id, None)
            if task is not None:
                p.remove_task(task)
            p.advance(self.total)
            if kw["status"] != "finished":
                p.console.print(f"  {run.label}: {kw['status']}")


def _print_summary(summary, store) -> None:
    from rich.console import Console

    s = summary
    Console().print(
        f"sweep {s.sweep}: {s.total} runs - {s.finished} finished, {s.skipped} skipped "
        f"(already done), {s.diverged} diverged, {s.failed} failed"
        + (f", {s.interrupted} interrupted" if s.interrupted else "")
        + f" in {s.seconds:.0f} s; store {store}",
        highlight=False,
    )
    for run_id, err in s.errors.items():
        Console().print(f"  failed {run_id}: {err}", highlight=False)
    if s.failed:
        raise typer.Exit(1)
