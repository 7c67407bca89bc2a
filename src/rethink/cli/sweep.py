"""`rethink sweep` and `rethink reproduce`: run a grid of runs into a store (and report it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from rethink.cli import app
from rethink.cli._budget import STOP_AFTER, STOPPED, parse_duration
from rethink.cli._oneline import OneLineCommand
from rethink.cli._sets import SET_OPTION, parse_sets

_JOBS = typer.Option(1, "--jobs", "-j", help="Runs at once (local worker processes).")
_BACKEND = typer.Option("local", "--backend", help="local (this machine) or ray.")
_ADDRESS = typer.Option(None, "--address", help="An existing Ray cluster (with --backend ray).")
_DATA = typer.Option(None, "--data-dir", help="Where datasets are found (default: usual places).")
_DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or mps.")
_THREADS = typer.Option(
    None, "--threads", help="torch threads per run (default: this machine's cores / --jobs)."
)


@app.command("sweep", cls=OneLineCommand)
def sweep_command(
    file: str = typer.Argument(..., help="A sweep TOML file (see docs/sweeps.md)."),
    store: str = typer.Option(None, "--store", help="Results store (default runs/<name>.db)."),
    scale: str = typer.Option(
        None, "--scale", help="A scale of the sweep (`rethink presets` lists them; default cpu)."
    ),
    jobs: int = _JOBS,
    threads: int = _THREADS,
    backend: str = _BACKEND,
    address: str = _ADDRESS,
    data_dir: str = _DATA,
    device: str = _DEVICE,
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs; run nothing."),
    sets: list[str] = SET_OPTION,
    stop_after: str = STOP_AFTER,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Run every run of a sweep file or preset; finished runs are skipped, unfinished ones
    resume."""
    from rethink.sweep import load_sweep, preset_path

    budget = parse_duration(stop_after)
    plan = load_sweep(preset_path(file), scale=scale, overrides=parse_sets(sets))
    summary = _run(
        plan, store, jobs, threads, backend, address, data_dir, device, dry_run, as_json, budget
    )
    if _stopped(summary):
        raise typer.Exit(STOPPED)


@app.command("reproduce", cls=OneLineCommand)
def reproduce_command(
    name: str = typer.Argument(
        ..., help="A preset (`rethink presets` lists them and their scales) or a sweep file."
    ),
    scale: str = typer.Option(
        None, "--scale", help="smoke (seconds), demo, cpu, cifar, paper (GPU)...; default cpu."
    ),
    out: str = typer.Option(None, "--out", help="Report folder (default results/<name>-<scale>)."),
    store: str = typer.Option(None, "--store", help="Results store (default <out>/runs.db)."),
    jobs: int = _JOBS,
    threads: int = _THREADS,
    backend: str = _BACKEND,
    address: str = _ADDRESS,
    data_dir: str = _DATA,
    device: str = _DEVICE,
    sets: list[str] = SET_OPTION,
    stop_after: str = STOP_AFTER,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Run a paper preset at a scale, then write its report (figures, tables, report.html).
    With --stop-after, a sweep stopped by its budget writes no report (exit status 3)."""
    from rethink.report import write_report
    from rethink.sweep import load_sweep, preset_path

    budget = parse_duration(stop_after)
    plan = load_sweep(preset_path(name), scale=scale, overrides=parse_sets(sets))
    scale = plan.scale
    out = Path(out) if out else Path("results") / plan.name
    store = Path(store) if store else out / "runs.db"
    summary = _run(
        plan, store, jobs, threads, backend, address, data_dir, device, False, False, budget
    )
    if _stopped(summary):
        if not as_json:
            print(f"no report yet: it is written once every run of {plan.name} has ended.")
        raise typer.Exit(STOPPED)
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


def _stopped(summary) -> bool:
    """Whether the sweep stopped at its time budget with runs left (interrupted or pending)."""
    return summary is not None and (summary.interrupted > 0 or summary.pending > 0)


def _run(
    plan, store, jobs, threads, backend, address, data_dir, device, dry_run, as_json, budget=None
):
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
                threads=threads,
                backend=backend,
                address=address,
                data_dir=str(data_dir) if data_dir else None,
                device=device,
                on_event=view.event,
                stop_after=budget,
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
    """rethink.progress.SweepProgress on stderr, started at the sweep's first event (so an
    error found before any run starts is the only line printed)."""

    def __init__(self, plan, quiet: bool):
        self.plan, self.quiet, self.view = plan, quiet, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.view is not None:
            self.view.close()

    def event(self, kind: str, run, **kw) -> None:
        if self.view is None:
            from rethink.progress import SweepProgress

            mode = "quiet" if self.quiet else "auto"
            self.view = SweepProgress(self.plan.name, len(self.plan), stream=sys.stderr, mode=mode)
        v = self.view
        if kind == "skip":
            v.skipped(run.label, run.run_id)
        elif kind == "start":
            v.started(run.label, run.run_id, kw.get("resumed_from"), run.spec.train.max_epochs)
        elif kind == "epoch":
            v.epoch(run.run_id, kw["record"])
        elif kind == "end":
            v.finished(run.label, run.run_id, kw["status"], kw.get("result") or {})


def _print_summary(summary, store) -> None:
    from rich.console import Console

    s = summary
    Console().print(
        f"sweep {s.sweep}: {s.total} runs - {s.finished} finished, {s.skipped} skipped "
        f"(already done), {s.diverged} diverged, {s.failed} failed"
        + (f", {s.interrupted} interrupted" if s.interrupted else "")
        + (f", {s.pending} not started" if s.pending else "")
        + f" in {s.seconds:.0f} s; store {store}",
        highlight=False,
    )
    if _stopped(s):  # only a time budget ends a sweep that way without raising
        Console(stderr=True).print(
            f"stopped at the time budget: {s.interrupted} run(s) checkpointed at their last "
            f"epoch, {s.pending} not started; run the same command again to resume.",
            highlight=False,
        )
    for run_id, err in s.errors.items():
        Console().print(f"  failed {run_id}: {err}", highlight=False)
    if s.failed:
        raise typer.Exit(1)


@app.command("presets", cls=OneLineCommand)
def presets_command(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """List the presets shipped with rethink: description, scales, expected result, runtime.
    A path to your own TOML works wherever a preset name does."""
    import tomllib

    from rethink.sweep import PRESET_DIR

    items = []
    for path in sorted(PRESET_DIR.glob("*.toml")):
        doc = tomllib.loads(path.read_text())
        scales = doc.get("scales", {})
        items.append(
            {
                "name": path.stem,
                "description": doc.get("description", ""),
                "scales": {
                    k: {"runtime": v.get("runtime", ""), "expect": v.get("expect", "")}
                    for k, v in scales.items()
                },
            }
        )
    if as_json:
        print(json.dumps({"presets": items, "folder": str(PRESET_DIR)}))
        return
    from rich.console import Console

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    for p in items:
        console.print(f"[bold]{p['name']}[/bold]: {p['description']}")
        for scale, info in p["scales"].items():
            console.print(f"  --scale {scale}: {info['runtime']}", markup=False)
            if info["expect"]:
                console.print(f"      expected: {info['expect']}", markup=False)
    console.print(
        f"run one with: rethink reproduce NAME --scale SCALE  ({PRESET_DIR})", markup=False
    )
