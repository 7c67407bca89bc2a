"""`rethink measures`: generalization measures of a store's runs, scored against the gap."""

from __future__ import annotations

import json
import sys

import typer

from rethink.cli import app


@app.command("measures")
def measures_command(
    store: str = typer.Argument(..., help="A results store (.db) written by run or sweep."),
    runs: list[str] = typer.Option(  # noqa: B008  (typer's way to declare a repeatable option)
        None, "--runs", help="Only these run ids or unique prefixes (comma-separated, repeatable)."
    ),
    only: str = typer.Option(None, "--only", help="Only these measures: NAME,NAME,..."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
    force: bool = typer.Option(False, "--force", help="Recompute measures already stored."),
    sample: int = typer.Option(1000, "--sample", help="Training examples the margins use."),
    flat_sample: int = typer.Option(
        500, "--flat-sample", help="The first this many of them: flatness, Hessian, gradients."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample and the noise draws."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, mps or auto."),
) -> None:
    """Compute size, norm, margin, flatness and optimization measures of every finished run
    with a final checkpoint (kept in the store's measures table; only missing ones are
    computed), then score each against the generalization gap: Kendall's tau, granulated
    tau, PGDL conditional mutual information, with random-label runs included and excluded.
    docs/measures.md defines them."""
    from rethink import measures

    run_ids = [r for item in runs or [] for r in item.split(",") if r.strip()] or None
    rows = measures.compute(
        store,
        runs=run_ids,
        only=only,
        force=force,
        sample=sample,
        flat_sample=flat_sample,
        seed=seed,
        device=device,
    )
    scores = measures.score(store, runs=run_ids, only=only)
    if as_json:
        print(json.dumps({"measures": rows, "scores": scores}))
        return
    _print_scores(scores, len({r["run_id"] for r in rows}))


def _print_scores(scores: list[dict], n_runs: int) -> None:
    from rich.console import Console
    from rich.table import Table

    inc = {s["measure"]: s for s in scores if s["random_labels"] == "included"}
    exc = {s["measure"]: s for s in scores if s["random_labels"] == "excluded"}
    order = sorted(inc, key=lambda m: -(inc[m]["kendall_tau"] or -9))
    table = Table(title=f"measures against the generalization gap, {n_runs} runs")
    for col in ("measure", "tau", "granulated", "CMI", "runs", "tau w/o RL", "gran. w/o RL",
                "CMI w/o RL", "runs"):  # fmt: skip
        table.add_column(col, justify="left" if col == "measure" else "right", no_wrap=True)

    def f(v):
        return "-" if v is None else f"{v:+.3f}"

    for m in order:
        a, b = inc[m], exc[m]
        table.add_row(m, f(a["kendall_tau"]), f(a["granulated_tau"]), f(a["pgdl_cmi"]),
                      str(a["runs"]), f(b["kendall_tau"]), f(b["granulated_tau"]),
                      f(b["pgdl_cmi"]), str(b["runs"]))  # fmt: skip
    Console(file=sys.stdout, width=max(120, Console().width)).print(table)
