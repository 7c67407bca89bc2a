"""`rethink report`: figures, tables and report.html from a results store."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rethink.cli import app


@app.command("report")
def report_command(
    store: str = typer.Argument(..., help="A results store (.db) written by run or sweep."),
    out: str = typer.Option("report", "--out", "-o", help="Folder for figures and tables."),
    sweep: list[str] = typer.Option(  # noqa: B008  (typer's way to declare a repeatable option)
        None, "--sweep", help="Only these sweeps (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
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
