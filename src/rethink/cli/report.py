"""`rethink report`: figures, tables and report.html from a results store."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rethink.cli import app
from rethink.cli._oneline import OneLineCommand


@app.command("report", cls=OneLineCommand)
def report_command(
    store: str = typer.Argument(
        ..., metavar="STORE", help="A results store (.db) written by run or sweep."
    ),
    out: str = typer.Option(
        "report", "--out", "-o", metavar="DIR", help="Folder for figures and tables."
    ),
    sweep: list[str] = typer.Option(  # noqa: B008  (typer's way to declare a repeatable option)
        None, "--sweep", metavar="NAME", help="Only these sweeps (repeatable)."
    ),
    as_json: bool = typer.Option(
        False, "--json", metavar="", help="Print one JSON object as the last line."
    ),
) -> None:
    """Write Fig. 1a/1b/1c, test-accuracy curves (Fig. 2) and tables with the paper's numbers
    (PNG, PDF, Markdown, LaTeX, CSV) and one self-contained report.html."""
    from rethink.report import write_report

    paths = write_report(store, out, sweeps=list(sweep) if sweep else None)
    html = Path(out) / "report.html"
    if as_json:
        print(json.dumps({"out": str(out), "html": str(html), "files": [str(p) for p in paths]}))
    else:
        print(f"wrote {len(paths)} files to {out}; open {html}")
