"""`rethink export`: a results store as Parquet, CSV, TensorBoard event files or MLflow runs."""

from __future__ import annotations

import json

import typer

from rethink.cli import app
from rethink.cli._oneline import OneLineCommand


@app.command("export", cls=OneLineCommand)
def export_command(
    store: str = typer.Argument(..., metavar="STORE", help="A results store (.db)."),
    to: str = typer.Option(
        ..., "--to", metavar="FORMAT", help="parquet, csv, tensorboard or mlflow."
    ),
    out: str = typer.Option(..., "--out", "-o", metavar="DIR", help="Folder to export into."),
    runs: list[str] = typer.Option(  # noqa: B008  (typer's way to declare a repeatable option)
        None,
        "--runs",
        metavar="RUN_ID",
        help="Only these runs: ids or unique prefixes (repeatable, or comma-separated).",
    ),
    sweep: list[str] = typer.Option(  # noqa: B008
        None, "--sweep", metavar="NAME", help="Only these sweeps (repeatable)."
    ),
    as_json: bool = typer.Option(
        False, "--json", metavar="", help="Print one JSON object as the last line."
    ),
) -> None:
    """Export runs and epochs: parquet (runs.parquet, epochs.parquet), csv (every column),
    tensorboard (one event folder per run: scalars, spec, hparams) or mlflow (DIR/mlruns: one
    experiment per sweep, one MLflow run per rethink run). Parquet, TensorBoard and MLflow
    are optional extras: pip install 'rethink\\[parquet]' (or tensorboard, mlflow)."""
    from rethink.export import export

    ids = [p.strip() for r in runs or [] for p in r.split(",") if p.strip()] or None
    paths = export(store, to, out, runs=ids, sweeps=list(sweep) if sweep else None)
    if as_json:
        print(json.dumps({"to": to, "out": str(out), "files": [str(p) for p in paths]}))
        return
    print(f"exported to {to}: {', '.join(str(p) for p in paths[:4])}", end="")
    print(f" and {len(paths) - 4} more" if len(paths) > 4 else "")
    if to == "tensorboard":
        print(f"view with: tensorboard --logdir {out}")
    elif to == "mlflow":
        print(f"view with: MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri {out}/mlruns")
