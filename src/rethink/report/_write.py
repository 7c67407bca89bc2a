"""write_report: store -> figures, tables and report.html in one folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

from rethink.errors import RethinkError
from rethink.report import _figures as F
from rethink.report._html import write_html
from rethink.report._load import load_frames
from rethink.report._tables import fig1a_table, fig1bc_table, results_table, write_table


def _check_out(out: Path) -> None:
    """--out must be a folder (or not exist yet, under a folder): refused before reading."""
    if out.exists() and not out.is_dir():
        raise RethinkError(f"--out {out} is a file; give a folder for the report.")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise RethinkError(f"--out {out} lies under {parent}, which is a file, not a folder.")


def write_report(
    store: str | os.PathLike,
    out: str | os.PathLike,
    *,
    sweeps: list[str] | None = None,
    run_ids: list[str] | None = None,
    notes: dict[str, str] | None = None,
) -> list[Path]:
    """Write the report of `store` (only `sweeps` / `run_ids` if given) into `out`; returns
    the files.

    `notes` maps a sweep name to a sentence shown under its heading (e.g. the preset's
    expected result)."""
    out = Path(out)
    _check_out(out)
    runs, epochs = load_frames(store, sweeps, run_ids)
    if runs.empty:
        which = f" for sweep {', '.join(sweeps)}" if sweeps else ""
        raise RethinkError(f"the store {store} has no runs{which} to report.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RethinkError(f"cannot create the report folder {out} ({err.strerror}).") from None
    written: list[Path] = []
    sections = []
    for sweep, g in runs.groupby("sweep", sort=False):
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(sweep))
        ep = epochs[epochs["run_id"].isin(g["run_id"])] if not epochs.empty else epochs
        done = g[g["status"].isin(["finished", "diverged"])]
        tables = [results_table(g, stem)]
        figures = []
        if not done.empty:
            for t in (fig1a_table(done, ep, stem), fig1bc_table(done, stem)):
                if t is not None:
                    tables.append(t)
            for name, fig, alt in (
                ("fig1a", F.fig1a(done, ep, f"{sweep}: training loss"), "Fig. 1a"),
                ("fig1b", F.fig1b(done, f"{sweep}: time to fit"), "Fig. 1b"),
                ("fig1c", F.fig1c(done, f"{sweep}: test error"), "Fig. 1c"),
            ):
                if fig is not None:
                    paths = F.save(fig, out, f"{stem}-{name}")
                    written += paths
                    figures.append((paths[0], f"{alt}: {sweep}"))
        fig = F.curves(g, ep, f"{sweep}: test accuracy over training (best so far shaded)")
        if fig is not None:
            paths = F.save(fig, out, f"{stem}-curves")
            written += paths
            figures.append((paths[0], f"Test accuracy curves: {sweep}"))
        for t in tables:
            written += write_table(t, out)
        sections.append(
            {
                "sweep": str(sweep),
                "notes": (notes or {}).get(str(sweep), ""),
                "tables": tables,
                "figures": figures,
                "runs": g,
            }
        )
    from rethink.measures._report import has_measures, report_section

    if has_measures(store):  # `rethink measures` ran on this store: ranking and scatter plots
        files, section = report_section(store, out, runs)
        written += files
        sections.append(section)
    from rethink.dynamics.report import report_section as dynamics_section

    files, section = dynamics_section(store, out, runs)  # runs with per-example records
    written += files
    if section is not None:
        sections.append(section)
    intro = (
        f"{len(runs)} runs from {Path(store).name}; accuracies in percent, mean ± sample sd "
        "over seeds where there are several. Paper numbers: Zhang et al., ICLR 2017."
    )
    written.append(write_html(out / "report.html", "rethink report", sections, intro))
    return written
