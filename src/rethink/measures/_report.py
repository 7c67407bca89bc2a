"""write_measures_report: the ranked table of measures and scatter plots against the gap."""

from __future__ import annotations

import math
import os
from pathlib import Path

from rethink.errors import RethinkError


def has_measures(store_path: str | os.PathLike) -> bool:
    """Whether the store file holds a non-empty measures table (read-only check)."""
    import sqlite3

    path = Path(store_path)
    if not path.is_file():
        return False
    try:
        db = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT COUNT(*) FROM measures").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return bool(row and row[0])


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:+.3f}"


def write_measures_report(
    store_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    run_ids: list[str] | None = None,
) -> list[Path]:
    """Write measures-ranking.md / .csv (every measure ranked by Kendall's tau with the gap,
    all runs, beside its granulated tau, PGDL CMI and the same without random-label runs) and
    measures-best.png / measures-worst.png (the highest- and lowest-tau measure against the
    gap, random-label runs marked) into out_dir; returns the files. Only `run_ids` if given.
    Reads only what rethink.measures.compute stored."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rethink.measures._compute import _open, _select_runs, _stored, score
    from rethink.measures._score import is_random_labels

    if not has_measures(store_path):
        raise RethinkError(f"the store {store_path} has no measures; run rethink measures first.")
    scores = score(store_path, runs=run_ids)
    inc = {s["measure"]: s for s in scores if s["random_labels"] == "included"}
    exc = {s["measure"]: s for s in scores if s["random_labels"] == "excluded"}
    ranked = sorted(
        (m for m in inc if inc[m]["kendall_tau"] is not None),
        key=lambda m: -inc[m]["kendall_tau"],
    )
    ranked += [m for m in inc if m not in ranked]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols = ["rank", "measure", "tau", "tau_test_error", "granulated_tau", "pgdl_cmi", "runs",
            "tau_no_rl", "granulated_tau_no_rl", "pgdl_cmi_no_rl", "runs_no_rl"]  # fmt: skip
    rows = []
    for i, m in enumerate(ranked, 1):
        a, b = inc[m], exc[m]
        rows.append([i, m, a["kendall_tau"], a["kendall_tau_test_error"], a["granulated_tau"],
                     a["pgdl_cmi"], a["runs"], b["kendall_tau"], b["granulated_tau"],
                     b["pgdl_cmi"], b["runs"]])  # fmt: skip
    csv_path = out / "measures-ranking.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows(rows)
    md = [
        "| rank | measure | tau (gap) | tau (test error) | granulated tau | PGDL CMI | runs "
        "| tau, no random labels | granulated, no RL | CMI, no RL | runs |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [str(r[0]), f"`{r[1]}`"] + [_fmt(v) if k != 6 and k != 10 else str(v)
                                           for k, v in enumerate(r) if k >= 2]  # fmt: skip
        md.append("| " + " | ".join(cells) + " |")
    md_path = out / "measures-ranking.md"
    md_path.write_text(
        "Measures ranked by Kendall's tau with the generalization gap (train minus test "
        "accuracy) over all runs; CMI in [0, 1] (higher: more informative).\n\n"
        + "\n".join(md)
        + "\n"
    )
    written = [md_path, csv_path]
    st, owned = _open(store_path)
    try:
        usable, _ = _select_runs(st, run_ids)
        stored = _stored(st)
    finally:
        if owned:
            st.close()
    defined = [m for m in ranked if inc[m]["kendall_tau"] is not None]
    ends = [("best", defined[0]), ("worst", defined[-1])] if len(defined) >= 2 else []
    for tag, m in ends:
        fig, ax = plt.subplots(figsize=(4.5, 3.5), dpi=120)
        for rl, color, label in ((False, "tab:blue", "true / partial labels"),
                                 (True, "tab:red", "random labels")):  # fmt: skip
            pts = [
                (stored.get((r["run_id"], m)), r["result"]["train_acc"] - r["result"]["test_acc"])
                for r in usable
                if is_random_labels(r["spec"]) == rl and r["result"].get("test_acc") is not None
            ]
            pts = [(v, g) for v, g in pts if v is not None and math.isfinite(v)]
            if pts:
                ax.scatter([p[0] for p in pts], [100 * p[1] for p in pts], s=14, c=color,
                           label=label)  # fmt: skip
        ax.set_xlabel(m)
        ax.set_ylabel("generalization gap (points)")
        ax.set_title(f"{tag}: {m} (tau {inc[m]['kendall_tau']:+.2f})", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"measures-{tag}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def report_section(
    store_path: str | os.PathLike, out_dir: str | os.PathLike, runs=None
) -> tuple[list[Path], dict]:
    """For rethink.report: write_measures_report's files for the runs of the frame `runs`
    (a "run_id" column; None: every run), and a report.html section (the ranked table as a
    rethink.report Table, the best / worst scatter plots; no run list)."""
    import pandas as pd

    from rethink.report._tables import Table

    ids = list(runs["run_id"]) if runs is not None and "run_id" in runs else None
    files = write_measures_report(store_path, out_dir, ids)
    csv_path = next(p for p in files if p.suffix == ".csv")
    table = Table(
        name="measures-ranking",
        title="Generalization measures ranked by Kendall's tau with the gap",
        frame=pd.read_csv(csv_path),
        caption=(
            "tau: Kendall's tau-b with the gap (train minus test accuracy); granulated_tau: "
            "Jiang et al. (2020)'s mean over hyperparameter axes; pgdl_cmi: the PGDL "
            "conditional mutual information (min over pairs of axes); *_no_rl: the same "
            "without random-label runs. Definitions: docs/measures.md."
        ),
    )
    figures = [(p, f"Measure against the gap: {p.stem}") for p in files if p.suffix == ".png"]
    section = {
        "sweep": "generalization measures",
        "notes": "",
        "tables": [table],
        "figures": figures,
        "runs": pd.DataFrame(),  # the sweeps' own sections list the runs
    }
    return files, section
