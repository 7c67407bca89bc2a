"""Figures as functions of the runs/epochs frames (matplotlib, Agg backend), PNG and PDF.

- fig1a: training loss vs optimization steps, one line per corruption (mean over seeds,
  min-max shaded), one panel per (dataset, model).
- fig1b: steps to fit relative to true labels vs label-corruption level p, one line per model.
- fig1c: test error vs p, one line per model, chance level dashed.
- curves (Fig. 2 style): test accuracy over epochs per setting, best-so-far shaded.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rethink.report._tables import setting_name  # noqa: E402

_KIND_ORDER = ["none", "random-labels", "shuffled-pixels", "random-pixels", "gaussian"]
_KIND_NAME = {"none": "true labels"}


def save(fig, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def fig1a(runs: pd.DataFrame, epochs: pd.DataFrame, title: str):
    """Training loss vs steps for each corruption; None if fewer than two corruptions."""
    sub = runs[~runs["kind"].eq("partial-labels")]
    if sub["kind"].nunique() < 2 or epochs.empty:
        return None
    groups = list(sub.groupby(["dataset", "model"], sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, ((ds, model), g) in zip(axes[0], groups, strict=True):
        kinds = sorted(
            g["kind"].unique(), key=lambda k: _KIND_ORDER.index(k) if k in _KIND_ORDER else 99
        )
        for kind in kinds:
            ids = g.loc[g["kind"] == kind, "run_id"]
            _mean_band(
                ax,
                epochs[epochs["run_id"].isin(ids)],
                "step",
                "train_loss",
                _KIND_NAME.get(kind, kind),
            )
        ax.set(xlabel="optimization steps", ylabel="training loss", title=f"{model} on {ds}")
        ax.set_ylim(bottom=0)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def _mean_band(ax, ep: pd.DataFrame, x: str, y: str, label: str) -> None:
    """Mean of y over runs at each x (runs share their step grid), min-max shaded."""
    if ep.empty:
        return
    table = ep.pivot_table(index=x, columns="run_id", values=y)
    xs = table.index.to_numpy()
    mean = table.mean(axis=1).to_numpy()
    (line,) = ax.plot(
        xs, mean, label=f"{label} ({table.shape[1]})" if table.shape[1] > 1 else label
    )
    if table.shape[1] > 1:
        ax.fill_between(
            xs, table.min(axis=1), table.max(axis=1), color=line.get_color(), alpha=0.2, linewidth=0
        )


def fig1b(runs: pd.DataFrame, title: str):
    """Convergence time relative to p=0 vs p, per model; None without a p sweep."""
    sub = runs[runs["p"].notna()]
    if sub["p"].nunique() < 3:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (ds, model), g in sub.groupby(["dataset", "model"], sort=False):
        base = g.loc[g["p"] == 0, "r.steps_to_fit"].astype(float).mean()
        stats = g.assign(rel=g["r.steps_to_fit"].astype(float) / base).groupby("p")["rel"]
        m, lo, hi = stats.mean(), stats.min(), stats.max()
        ax.errorbar(
            m.index, m, yerr=[m - lo, hi - m], marker="o", capsize=3, label=f"{model} ({ds})"
        )
    ax.set(xlabel="label corruption p", ylabel="time to fit / time to fit at p=0", title=title)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def fig1c(runs: pd.DataFrame, title: str):
    """Test error (%) vs p per model, chance dashed; None without a p sweep."""
    sub = runs[runs["p"].notna()]
    if sub["p"].nunique() < 3:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (ds, model), g in sub.groupby(["dataset", "model"], sort=False):
        err = (1 - g["r.test_acc"].astype(float)) * 100
        stats = g.assign(err=err).groupby("p")["err"]
        m, lo, hi = stats.mean(), stats.min(), stats.max()
        ax.errorbar(
            m.index, m, yerr=[m - lo, hi - m], marker="o", capsize=3, label=f"{model} ({ds})"
        )
    ax.axhline(90.0, color="grey", ls="--", lw=1, label="chance (10 classes)")
    ax.set(xlabel="label corruption p", ylabel="test error (%)", title=title, ylim=(0, 100))
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def curves(runs: pd.DataFrame, epochs: pd.DataFrame, title: str, max_settings: int = 12):
    """Test accuracy over epochs per setting (mean over seeds); best-so-far shaded above."""
    if epochs.empty:
        return None
    configs = list(runs.groupby("config", sort=False))[:max_settings]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if len(configs) > 10:
        ax.set_prop_cycle(color=plt.cm.tab20(np.linspace(0, 1, 20))[: len(configs)])
    for _, g in configs:
        ep = epochs[epochs["run_id"].isin(g["run_id"])]
        if ep.empty:
            continue
        acc = ep.pivot_table(index="epoch", columns="run_id", values="test_acc").mean(axis=1)
        xs, ys = acc.index.to_numpy(), acc.to_numpy() * 100
        best = np.fmax.accumulate(ys)
        (line,) = ax.plot(xs, ys, label=setting_name(g.iloc[0]["label"])[:40])
        ax.fill_between(xs, ys, best, color=line.get_color(), alpha=0.15, linewidth=0)
        i = int(np.nanargmax(ys))
        ax.plot(xs[i], ys[i], marker="*", color=line.get_color(), ms=9)
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig
