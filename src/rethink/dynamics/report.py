"""Figures and the detection table of memorization dynamics, from a store only.

`write_dynamics_figures(store, out_dir)` writes, for every run with per-example records:
learning order (clean vs changed learned fraction per epoch; Arpit et al. 2017), a data map
coloured by changed (Swayamdipta et al. 2020), forgetting-count histograms (Toneva et al.
2019), AUM distributions (Pleiss et al. 2020), the detection table (Markdown + CSV), and,
for every run whose epochs carry `csr_train` / `csr_test`, the critical sample ratio over
epochs (true vs random labels). Each figure is PNG + PDF. A store with none of these gives
no files (so rethink.report can call this unconditionally).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rethink.dynamics import _records  # noqa: E402
from rethink.dynamics import scores as S  # noqa: E402

_MAP_POINTS = 4000  # points drawn per data map (a fixed random subset of larger runs)


def write_dynamics_figures(
    store_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    run_ids: list[str] | None = None,
) -> list[Path]:
    """Write the dynamics figures and tables of `store_path` (only `run_ids` if given) into
    `out_dir`; returns the files (empty if those runs have neither example records nor CSR
    metrics)."""
    from rethink.store import Store

    with Store(store_path, readonly=True) as st:
        runs = {r["run_id"]: r for r in st.runs()}
        if run_ids is not None:
            runs = {k: v for k, v in runs.items() if k in set(run_ids)}
        scored = []
        for rid in _records.record_runs(st.db):
            rec = _records.load(st.db, rid)
            if rid not in runs or not (rec["epochs"] > 0).any():
                continue
            label = S.run_label(runs[rid]["spec"])
            scored.append((rid, label, rec, S.run_scores(rec)))
        csr = _csr_curves(st, runs)
    out = Path(out_dir)
    written: list[Path] = []
    if scored or csr:
        out.mkdir(parents=True, exist_ok=True)
    if scored:
        mixed = [s for s in scored if 0 < s[2]["changed"].mean() < 1]
        for name, draw, which in (
            ("dynamics-learning-order", _learning_order, mixed),
            ("dynamics-data-map", _data_map, scored),
            ("dynamics-forgetting", _forgetting, scored),
            ("dynamics-aum", _aum, scored),
        ):
            if which:
                written += _save(_panels(which, draw), out, name)
        written += _detection_table(scored, out)
    if csr:
        written += _save(_csr_figure(csr), out, "dynamics-csr")
    return written


def report_section(
    store_path: str | os.PathLike, out_dir: str | os.PathLike, runs=None
) -> tuple[list[Path], dict | None]:
    """For rethink.report: write_dynamics_figures for the runs of the frame `runs` (a
    "run_id" column; None: every run) and a report.html section (figures and the detection
    table); (files, None) when there is nothing to show."""
    import pandas as pd

    from rethink.report._tables import Table

    ids = list(runs["run_id"]) if runs is not None and "run_id" in runs else None
    files = write_dynamics_figures(store_path, out_dir, ids)
    if not files:
        return files, None
    tables = []
    for p in files:
        if p.name == "dynamics-detection.csv":
            frame = pd.read_csv(p).drop(columns=["run_id"])
            frame = frame.dropna(axis=1, how="all")
            caption = (
                "How well each score singles out the changed labels: ROC-AUC (0.5 = chance) "
                "and precision among the k most suspicious examples, k = the number of changed "
                "labels; flags: whether a high or a low value is suspicious. Definitions: "
                "docs/dynamics.md."
            )
            tables.append(Table("dynamics-detection", "Detecting changed labels", frame, caption))
    alt = {
        "dynamics-learning-order": "Learning order: clean vs changed labels (Arpit et al.)",
        "dynamics-data-map": "Data maps coloured by changed (Swayamdipta et al.)",
        "dynamics-forgetting": "Forgetting events, clean vs changed (Toneva et al.)",
        "dynamics-aum": "Area under the margin, clean vs changed (Pleiss et al.)",
        "dynamics-csr": "Critical sample ratio over epochs (Arpit et al.)",
    }
    figures = [(p, alt.get(p.stem, p.stem)) for p in files if p.suffix == ".png"]
    section = {
        "sweep": "memorization dynamics",
        "notes": "",
        "tables": tables,
        "figures": figures,
        "runs": pd.DataFrame(),  # the sweeps' own sections list the runs
    }
    return files, section


# ---- helpers ---------------------------------------------------------------------------
def _save(fig, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _panels(items: list, draw) -> Any:
    cols = min(3, len(items))
    rows = math.ceil(len(items) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax, (rid, label, rec, sc) in zip(axes.flat, items, strict=False):
        draw(ax, rec, sc)
        ax.set_title(f"{label}\n{rid}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(items) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def _learning_order(ax, rec, sc) -> None:
    ep = rec["epochs"]
    ax.plot(ep, sc["learned_clean"], label="clean labels")
    ax.plot(ep, sc["learned_changed"], "--", label="changed labels")
    ax.set(xlabel="epoch", ylabel="fraction classified as its label", ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)


def _data_map(ax, rec, sc) -> None:
    n = len(rec["changed"])
    idx = np.arange(n)
    if n > _MAP_POINTS:
        idx = np.sort(np.random.default_rng(0).choice(n, _MAP_POINTS, replace=False))
    ch = rec["changed"][idx]
    groups = [(~ch, "clean", "tab:blue"), (ch, "changed", "tab:red")]
    groups.sort(key=lambda g: -int(g[0].sum()))  # the smaller group is drawn on top
    for mask, name, colour in groups:
        ax.scatter(
            sc["variability"][idx][mask],
            sc["confidence"][idx][mask],
            s=4,
            alpha=0.4,
            c=colour,
            label=name,
            linewidths=0,
        )
    ax.set(xlabel="variability (sd of p(label))", ylabel="confidence (mean p(label))")
    ax.legend(fontsize=8, markerscale=3)


def _forgetting(ax, rec, sc) -> None:
    f = sc["forgetting"]
    top = int(np.nanmax(np.where(np.isinf(f), 0, f))) + 1  # the "never learned" bin
    counts = np.where(np.isinf(f), top, f).astype(int)
    bins = np.arange(top + 2) - 0.5
    ch = rec["changed"]
    for mask, name in ((~ch, "clean"), (ch, "changed")):
        if mask.any():
            ax.hist(counts[mask], bins=bins, alpha=0.6, label=name, density=True)
    ticks = list(range(0, top, max(1, top // 6))) + [top]
    ax.set_xticks(ticks, [str(t) for t in ticks[:-1]] + ["never"])
    ax.set(xlabel="forgetting events", ylabel="share of group")
    ax.legend(fontsize=8)


def _aum(ax, rec, sc) -> None:
    a = sc["aum"]
    ch, thr = rec["changed"], rec["threshold"]
    bins = np.linspace(float(a.min()), float(a.max()) + 1e-9, 50)
    for mask, name in ((~ch & ~thr, "clean"), (ch & ~thr, "changed"), (thr, "threshold")):
        if mask.any():
            ax.hist(a[mask], bins=bins, alpha=0.55, label=name, density=True)
    if thr.any():
        ax.axvline(S.aum_threshold(a, thr), color="k", ls=":", label="99th pct threshold")
    ax.set(xlabel="area under the margin", ylabel="density")
    ax.legend(fontsize=8)


def _detection_table(scored: list, out: Path) -> list[Path]:
    rows = []
    for rid, label, rec, sc in scored:
        for r in S.detection(rec, sc):
            rows.append({"run_id": rid, "run": label, "noise_rate": rec["changed"].mean(), **r})
    if not rows:
        return []
    cols = ["run_id", "run", "noise_rate", "score", "flags", "roc_auc"]
    cols += ["precision_at_noise_rate", "rule_precision", "rule_recall"]
    csv_path, md_path = out / "dynamics-detection.csv", out / "dynamics-detection.md"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in cols})

    def fmt(v: Any) -> str:
        if v is None or v == "":
            return ""
        return f"{v:.3f}" if isinstance(v, float) and not math.isnan(v) else str(v)

    lines = [
        "# Which score singles out the changed labels",
        "",
        "ROC-AUC (0.5 = chance) and precision among the k most suspicious examples, k = the "
        "number of changed labels. `flags`: whether a high or a low value is suspicious.",
        "",
        "| run | noise rate | score | flags | ROC-AUC | precision at noise rate |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["flags"] == "rule":
            cells = f"precision {fmt(r['rule_precision'])}, recall {fmt(r['rule_recall'])}"
            lines.append(f"| {r['run']} | {fmt(r['noise_rate'])} | {r['score']} | | {cells} | |")
        else:
            lines.append(
                f"| {r['run']} | {fmt(r['noise_rate'])} | {r['score']} | {r['flags']} | "
                f"{fmt(r['roc_auc'])} | {fmt(r['precision_at_noise_rate'])} |"
            )
    md_path.write_text("\n".join(lines) + "\n")
    return [md_path, csv_path]


def _csr_curves(st, runs: dict[str, dict]) -> dict[tuple[str, str], list]:
    """{(dataset, model): [(setting label, epochs, csr_train, csr_test), ...]}."""
    out: dict[tuple[str, str], list] = {}
    for rid, run in runs.items():
        pts = [
            (e["epoch"], e.get("csr_train"), e.get("csr_test"))
            for e in st.epochs(rid)
            if e.get("csr_train") is not None or e.get("csr_test") is not None
        ]
        if not pts:
            continue
        spec = run["spec"]
        key = (spec.get("data", {}).get("dataset", "?"), spec.get("model", {}).get("name", "?"))
        label = S.run_label(spec).split(" on ")[0].split(" ", 1)[-1]
        ep, tr, te = (np.array(v, dtype=float) for v in zip(*pts, strict=True))
        out.setdefault(key, []).append((f"{label} seed={spec.get('seed', 0)}", ep, tr, te))
    return out


def _csr_figure(csr: dict) -> Any:
    items = list(csr.items())
    cols = min(3, len(items))
    rows = math.ceil(len(items) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    for ax, ((ds, model), curves) in zip(axes.flat, items, strict=False):
        for i, (label, ep, tr, te) in enumerate(sorted(curves, key=lambda c: c[0])):
            colour = f"C{i % 10}"
            ax.plot(ep, tr, "-o", ms=3, color=colour, label=f"{label} (train)")
            ax.plot(ep, te, ":", color=colour, label=f"{label} (test)")
        ax.set(xlabel="epoch", ylabel="critical sample ratio", title=f"{model} on {ds}")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(items) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig
