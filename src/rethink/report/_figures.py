"""Figures as functions of the runs/epochs frames (matplotlib, Agg backend), PNG and PDF.

- fig1a: training loss (log axis) vs optimization steps, one line per corruption (mean over
  seeds, min-max shaded), one panel per setting (dataset, model and every other field that
  differs between the runs).
- fig1b: steps to fit relative to true labels vs label-corruption level p, one line per
  setting.
- fig1c: test error vs p, one line per setting, chance level dashed.
- curves (Fig. 2 style): test accuracy over the evaluated epochs per setting, best-so-far
  shaded.

Only seeds are pooled; legends and titles name the fields that differ (report._names), titles
state the dataset and model, and every line has its own colour, dash pattern and marker so
no curve hides under another.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rethink.report import _names as N  # noqa: E402

_DASHES = ["-", "--", "-.", ":"]
_MARKERS = ["o", "s", "^", "D", "v", "x", "P", "*"]


def style(i: int) -> dict:
    """The i-th line's colour, dash pattern and marker (all three change with i)."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if i >= len(colors):
        colors = list(plt.cm.tab20(np.linspace(0, 1, 20)))
    return {
        "color": colors[i % len(colors)],
        "linestyle": _DASHES[i % len(_DASHES)],
        "marker": _MARKERS[i % len(_MARKERS)],
        "markerfacecolor": "none",  # hollow: a marker under another still shows
    }


def _every(n_points: int, i: int):
    """Markers on about 12 points, shifted per line so coinciding lines' markers alternate."""
    step = max(1, n_points // 12)
    return (i % step, step) if step > 1 else 1


def save(fig, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _panel_title(first: pd.Series, fields: list[str]) -> str:
    base = f"{N.dataset_name(first['data.dataset'])}, {N.model_name(first['model.name'])}"
    rest = [f for f in fields if f not in ("data.dataset", "model.name")]
    return base + (f" ({N.group_name(first, rest, corruption=False)})" if rest else "")


def fig1a(runs: pd.DataFrame, epochs: pd.DataFrame, title: str):
    """Training loss vs steps for each corruption; None if fewer than two corruptions."""
    sub = runs[~runs["kind"].eq("partial-labels")]
    if sub["kind"].nunique() < 2 or epochs.empty:
        return None
    fields = N.varying(sub, exclude=(*N.SEED_FIELDS, *N.CORRUPTION_FIELDS))
    panels = N.groups(sub, fields)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (first, g) in zip(axes[0], panels, strict=True):
        for i, (kfirst, k) in enumerate(N.groups(g, list(N.CORRUPTION_FIELDS))):
            ep = epochs[epochs["run_id"].isin(k["run_id"])]
            _mean_band(ax, ep, "step", "train_loss", N.run_corruption(kfirst), i)
        ax.set_yscale("log")
        ax.set(xlabel="optimization steps", ylabel="training loss (log scale)")
        ax.set_title(_panel_title(first, fields), fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{title}: {N.title(sub)}")
    return fig


def _mean_band(ax, ep: pd.DataFrame, x: str, y: str, label: str, i: int) -> None:
    """Mean of y over runs at each x (runs share their x grid), min-max shaded; points
    where y was not measured (NaN) and, on a log axis, non-positive values are skipped."""
    if ep.empty:
        return
    table = ep.pivot_table(index=x, columns="run_id", values=y)
    table = table.where(table > 0) if ax.get_yscale() == "log" or y == "train_loss" else table
    table = table.dropna(how="all")
    if table.empty:
        return
    xs = table.index.to_numpy()
    mean = table.mean(axis=1).to_numpy()
    n = table.shape[1]
    st = style(i)
    label = f"{label} ({n} seeds)" if n > 1 else label
    ax.plot(xs, mean, label=label, markevery=_every(len(xs), i), **st)
    if n > 1:
        ax.fill_between(
            xs, table.min(axis=1), table.max(axis=1), color=st["color"], alpha=0.15, lw=0
        )


def _p_lines(runs: pd.DataFrame):
    sub = runs[runs["p"].notna()]
    if sub["p"].nunique() < 3:
        return None, None, None
    fields = N.varying(sub, exclude=(*N.SEED_FIELDS, "corruption.kind", "corruption.prob"))
    return sub, fields, N.groups(sub, fields)


def _line_label(first: pd.Series, fields: list[str]) -> str:
    if fields:
        return N.group_name(first, fields, corruption=False)
    return f"{N.model_name(first['model.name'])} ({N.dataset_name(first['data.dataset'])})"


def fig1b(runs: pd.DataFrame, title: str):
    """Convergence time relative to p=0 vs p, per setting; None without a p sweep."""
    sub, fields, lines = _p_lines(runs)
    if sub is None:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, (first, g) in enumerate(lines):
        base = g.loc[g["p"] == 0, "r.steps_to_fit"].astype(float).mean()
        stats = g.assign(rel=g["r.steps_to_fit"].astype(float) / base).groupby("p")["rel"]
        m, lo, hi = stats.mean(), stats.min(), stats.max()
        ax.errorbar(
            m.index, m, yerr=[m - lo, hi - m], capsize=3, label=_line_label(first, fields),
            **style(i),
        )  # fmt: skip
    ax.set(xlabel="label corruption p", ylabel="time to fit / time to fit at p=0")
    ax.set_title(f"{title}: {N.title(sub)}", fontsize=10)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def fig1c(runs: pd.DataFrame, title: str):
    """Test error (%) vs p per setting, chance dashed; None without a p sweep."""
    sub, fields, lines = _p_lines(runs)
    if sub is None:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, (first, g) in enumerate(lines):
        err = (1 - g["r.test_acc"].astype(float)) * 100
        stats = g.assign(err=err).groupby("p")["err"]
        m, lo, hi = stats.mean(), stats.min(), stats.max()
        ax.errorbar(
            m.index, m, yerr=[m - lo, hi - m], capsize=3, label=_line_label(first, fields),
            **style(i),
        )  # fmt: skip
    ax.axhline(90.0, color="grey", ls="--", lw=1, label="chance (10 classes)")
    ax.set(xlabel="label corruption p", ylabel="test error (%)", ylim=(0, 100))
    ax.set_title(f"{title}: {N.title(sub)}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def curves(runs: pd.DataFrame, epochs: pd.DataFrame, title: str, max_settings: int = 12):
    """Test accuracy over the evaluated epochs per setting (mean over seeds; epochs without
    a test evaluation skipped); best-so-far shaded above, a star at the best epoch."""
    if epochs.empty:
        return None
    fields = N.varying(runs)
    settings = N.groups(runs, fields)[:max_settings]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = 0
    for i, (first, g) in enumerate(settings):
        ep = epochs[epochs["run_id"].isin(g["run_id"])]
        ep = ep[pd.to_numeric(ep["test_acc"], errors="coerce").notna()] if len(ep) else ep
        if ep.empty:
            continue
        acc = ep.pivot_table(index="epoch", columns="run_id", values="test_acc").mean(axis=1)
        acc = acc.dropna()
        xs, ys = acc.index.to_numpy(), acc.to_numpy() * 100
        best = np.fmax.accumulate(ys)
        st = style(i)
        label = N.group_name(first, fields)[:60]
        ax.plot(xs, ys, label=label, markevery=_every(len(xs), i), **st)
        ax.fill_between(xs, ys, best, color=st["color"], alpha=0.12, linewidth=0)
        j = int(np.nanargmax(ys))
        ax.plot(xs[j], ys[j], marker="*", color=st["color"], ms=10, ls="none")
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="epoch", ylabel="test accuracy (%)")
    ax.set_title(f"{title}: {N.title(runs)}", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig
