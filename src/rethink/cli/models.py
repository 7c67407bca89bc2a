"""`rethink models`: every model in the zoo with its parameter count for an input shape, and
the models installed packages register as entry points (group `rethink.models`)."""

from __future__ import annotations

import json

import typer

from rethink.cli import app
from rethink.errors import RethinkError


def _parse_shape(text: str) -> tuple[int, int, int]:
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise RethinkError(
            f"--input-shape must be three positive integers C,H,W such as 3,28,28, not {text!r}."
        )
    return shape  # type: ignore[return-value]


@app.command("models")
def models_command(
    input_shape: str = typer.Option(
        "3,28,28", "--input-shape", help="C,H,W of one input (the paper's CIFAR crop: 3,28,28)."
    ),
    classes: int = typer.Option(10, "--classes", help="Number of classes K (>= 2)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """List every model with its parameter count and the paper's learning rate."""
    from rethink import models

    shape = _parse_shape(input_shape)
    rows = models.describe(shape, classes)
    if as_json:
        keep = ("name", "params", "default_lr", "notes")
        print(json.dumps({"models": [{k: r[k] for k in keep} for r in rows]}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rethink models for input {'x'.join(map(str, shape))}, {classes} classes")
    table.add_column("name")
    table.add_column("parameters", justify="right")
    table.add_column("default lr", justify="right")
    table.add_column("notes")
    for r in rows:
        params = "-" if r["params"] is None else f"{r['params']:,}"
        table.add_row(str(r["name"]), params, f"{r['default_lr']:g}", str(r["notes"]))
    console = Console()
    console.print(table)
    console.print(
        "Families: mlp-<D>x<W> (D hidden layers of W units) and resnet18-k<K> (width k) "
        "take any positive integers. Your own model: --model module:function "
        "(docs/plugins.md)."
    )
