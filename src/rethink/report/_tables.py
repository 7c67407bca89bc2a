"""Tables as functions of the runs/epochs frames, with the paper's numbers alongside.

Every builder returns a `Table`: a numeric DataFrame (accuracies and errors in percent; a
column "X sd" holds the spread over seeds of column "X") and a caption that states how the
setting differs from the paper's. `write_table` renders Markdown, LaTeX and CSV.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rethink import paper

_UNVERIFIED = "*"  # marks a paper number PAPER.md takes from a secondary source


@dataclass
class Table:
    name: str
    title: str
    frame: pd.DataFrame
    caption: str


def setting_name(label: str) -> str:
    """A run's label without its seed, e.g. 'corruption.kind=none seed=1' -> 'kind=none'."""
    text = re.sub(r"\s*\bseed=\S+", "", label or "").strip()
    text = re.sub(r"\b(corruption|model|train|data)\.", "", text)
    return text or "base"


def describe_setting(runs: pd.DataFrame) -> str:
    """One sentence about the data, models and schedule these runs used."""

    def vals(col: str) -> str:
        v = sorted({str(x) for x in runs[col].dropna()}) if col in runs else []
        return ", ".join(v) or "-"

    sizes = sorted({int(x) for x in runs["data.train_size"].dropna()})
    size = f" ({', '.join(f'{s:,}' for s in sizes)} training images)" if sizes else " (full)"
    return (
        f"Dataset {vals('data.dataset')}{size}, preprocessing {vals('data.preprocess')}; "
        f"models {vals('model.name')}; SGD lr {vals('train.lr')} ({vals('train.schedule')} "
        f"schedule), momentum {vals('train.momentum')}, batch {vals('train.batch_size')}, "
        f"at most {vals('train.max_epochs')} epochs"
        + ("; stopped once the training set is fit" if runs["train.until_fit"].any() else "")
        + f"; seeds per setting: {_seeds(runs)}."
    )


def _seeds(runs: pd.DataFrame) -> str:
    n = runs.groupby("config")["seed"].nunique()
    return str(int(n.min())) if n.min() == n.max() else f"{int(n.min())}-{int(n.max())}"


def _mean_sd(series: pd.Series, scale: float = 1.0) -> tuple[float, float]:
    x = pd.to_numeric(series, errors="coerce").dropna() * scale
    if x.empty:
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan


def results_table(runs: pd.DataFrame, name: str) -> Table:
    """One row per setting (seeds pooled): final train/test accuracy and the paper's."""
    rows = []
    for _, g in runs.groupby("config", sort=False):
        first = g.iloc[0]
        row = {
            "setting": setting_name(first["label"]),
            "dataset": first["dataset"],
            "model": first["model"],
            "labels": _labels(first),
            "crop": "yes" if first["crop"] else "no",
            "weight decay": "yes" if first["wd"] else "no",
            "runs": len(g),
            "done": int(g["status"].isin(["finished", "diverged"]).sum()),
        }
        for col, key in (
            ("train acc", "r.train_acc"),
            ("test acc", "r.test_acc"),
            ("best test acc", "r.best_test_acc"),
        ):
            row[col], row[f"{col} sd"] = _mean_sd(g.get(key, pd.Series(dtype=float)), 100)
        row["epochs"], _ = _mean_sd(g.get("r.epochs", pd.Series(dtype=float)))
        ptrain, ptest, pnote = _paper_for(first)
        row["paper train"], row["paper test"], row["paper note"] = ptrain, ptest, pnote
        rows.append(row)
    frame = pd.DataFrame(rows)
    caption = (
        f"Final training and test accuracy (%), mean and sample sd over seeds. "
        f"{describe_setting(runs)} The paper's columns are CIFAR-10 with its own models and "
        f"schedule (Table 1; random labels with a regularizer: the appendix, values marked "
        f"{_UNVERIFIED} are unverified); they compare directly only where the dataset is "
        f"CIFAR-10 with the paper's preprocessing."
    )
    return Table(f"{name}-results", f"{name}: results", frame, caption)


def _labels(run: pd.Series) -> str:
    if run["kind"] == "partial-labels":
        return f"p={run['corruption.prob']:g}"
    return {"none": "true labels", "random-labels": "random labels"}.get(run["kind"], run["kind"])


def _paper_for(run: pd.Series) -> tuple[float, float, str]:
    rand = run["kind"] == "random-labels"
    if run["kind"] not in ("none", "random-labels") or run["dropout"]:
        return math.nan, math.nan, ""
    if run["flip"]:  # Table 1 has no flips; only the appendix's random-label rows do
        if not rand or run["crop"] or run["wd"]:
            return math.nan, math.nan, ""
        r4 = paper.table4_row(run["model"], "flip")
        if r4 is None:
            return math.nan, math.nan, ""
        return r4.train, math.nan, f"appendix{_UNVERIFIED}: {r4.note}"
    row = paper.table1_row(
        run["model"], crop=bool(run["crop"]), weight_decay=bool(run["wd"]), random_labels=rand
    )
    if row is not None:
        return row.train, row.test, "Table 1"
    if rand:
        regs = [
            r
            for r, on in (("weight_decay", run["wd"]), ("crop", run["crop"]), ("flip", run["flip"]))
            if on
        ]
        if len(regs) == 1:
            r4 = paper.table4_row(run["model"], regs[0])
            if r4 is not None:
                train = math.nan if r4.train is None else r4.train
                note = f"appendix{_UNVERIFIED}" + (f": {r4.note}" if r4.note else "")
                return train, math.nan, note
    return math.nan, math.nan, ""


def fig1a_table(runs: pd.DataFrame, epochs: pd.DataFrame, name: str) -> Table | None:
    """Steps to fit per corruption setting, relative to true labels, beside the paper's."""
    sub = runs[~runs["kind"].eq("partial-labels")]
    if sub["kind"].nunique() < 2:
        return None
    rows = []
    for (ds, model), g in sub.groupby(["dataset", "model"], sort=False):
        base_fit, _ = _mean_sd(g.loc[g["kind"] == "none", "r.steps_to_fit"])
        base_loss = _nanmean(
            [_steps_to_loss(epochs, r) for r in g.loc[g["kind"] == "none", "run_id"]]
        )
        for kind, k in g.groupby("kind", sort=False):
            fit, fit_sd = _mean_sd(k["r.steps_to_fit"])
            loss_steps = [_steps_to_loss(epochs, r) for r in k["run_id"]]
            loss_mean = _nanmean(loss_steps)
            pk = paper.FIG1A_STEPS_TO_LOSS_0_1.get(kind, math.nan)
            rows.append(
                {
                    "dataset": ds,
                    "model": model,
                    "setting": kind,
                    "runs": len(k),
                    "fit (of runs)": int(k["r.steps_to_fit"].notna().sum()),
                    "steps to 100% train": fit,
                    "steps to 100% train sd": fit_sd,
                    "relative": fit / base_fit if base_fit else math.nan,
                    "steps to loss<=0.1": loss_mean,
                    "relative (loss)": loss_mean / base_loss if base_loss else math.nan,
                    "train acc": _mean_sd(k["r.train_acc"], 100)[0],
                    "test acc": _mean_sd(k["r.test_acc"], 100)[0],
                    f"paper steps to loss<=0.1{_UNVERIFIED}": pk,
                    f"paper relative{_UNVERIFIED}": pk / paper.FIG1A_STEPS_TO_LOSS_0_1["none"],
                }
            )
    caption = (
        f"Fig. 1a: optimization steps until the training set is fit (100% training accuracy) "
        f"and until the training loss is at most 0.1, per corruption, mean over seeds. "
        f"{describe_setting(sub)} Paper columns: {paper.FIG1A_SOURCE} (small Inception on "
        f"CIFAR-10, batch 128; unverified)."
    )
    return Table(f"{name}-fig1a", f"{name}: Fig. 1a, time to fit", pd.DataFrame(rows), caption)


def _nanmean(xs: list[float]) -> float:
    x = np.asarray(xs, dtype=float)
    return float(np.nanmean(x)) if np.isfinite(x).any() else math.nan


def _steps_to_loss(epochs: pd.DataFrame, run_id: str, threshold: float = 0.1) -> float:
    e = epochs[(epochs["run_id"] == run_id) & (epochs["train_loss"] <= threshold)]
    return float(e["step"].min()) if len(e) else math.nan


def fig1bc_table(runs: pd.DataFrame, name: str) -> Table | None:
    """Per model and corruption level p: steps to fit relative to p=0, test error."""
    sub = runs[runs["p"].notna()]
    if sub["p"].nunique() < 3:
        return None
    rows = []
    for (ds, model), g in sub.groupby(["dataset", "model"], sort=False):
        base, _ = _mean_sd(g.loc[g["p"] == 0, "r.steps_to_fit"])
        for p, k in sorted(g.groupby("p"), key=lambda t: t[0]):
            fit, fit_sd = _mean_sd(k["r.steps_to_fit"])
            err, err_sd = _mean_sd(1 - pd.to_numeric(k["r.test_acc"]), 100)
            rows.append(
                {
                    "dataset": ds,
                    "model": model,
                    "p": p,
                    "runs": len(k),
                    "fit (of runs)": int(k["r.steps_to_fit"].notna().sum()),
                    "steps to fit": fit,
                    "steps to fit sd": fit_sd,
                    "relative to p=0": fit / base if base else math.nan,
                    "train acc": _mean_sd(k["r.train_acc"], 100)[0],
                    "test error": err,
                    "test error sd": err_sd,
                }
            )
    caption = (
        "Fig. 1b/1c: steps until 100% training accuracy relative to true labels, and test "
        f"error (%) at the end of training, per label-corruption level p. {describe_setting(sub)}"
        " Paper: CIFAR-10, small Inception / AlexNet / MLP 1x512; convergence slows by a small "
        "factor as p grows and test error rises steadily to 90% (chance) at p = 1."
    )
    return Table(f"{name}-fig1bc", f"{name}: Fig. 1b/1c", pd.DataFrame(rows), caption)


# ---- rendering ---------------------------------------------------------------------------
def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Strings for people: 'X sd' folded into 'X' as 'mean ± sd', NaN as '-'."""
    out = {}
    for col in frame.columns:
        if col.endswith(" sd"):
            continue
        sd = frame.get(f"{col} sd")
        digits = 0 if "steps" in col or col == "epochs" else 2
        out[col] = [
            _fmt(v, None if sd is None else sd.iloc[i], digits) for i, v in enumerate(frame[col])
        ]
    return pd.DataFrame(out)


def _fmt(v, sd=None, digits: int = 2) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "-"
        text = f"{v:,.{digits}f}"
        if sd is not None and not (isinstance(sd, float) and math.isnan(sd)):
            text += f" ± {sd:,.{digits}f}"
        return text
    return "-" if v is None else str(v)


def to_markdown(table: Table) -> str:
    d = display_frame(table.frame)
    lines = [f"**{table.title}.** {table.caption}", ""]
    lines.append("| " + " | ".join(d.columns) + " |")
    lines.append("|" + "|".join("---" for _ in d.columns) + "|")
    for _, r in d.iterrows():
        lines.append("| " + " | ".join(str(x).replace("|", "/") for x in r) + " |")
    return "\n".join(lines) + "\n"


def to_latex(table: Table) -> str:
    d = display_frame(table.frame)

    def esc(s: str) -> str:
        for a, b in (
            ("\\", r"\textbackslash{}"),
            ("&", r"\&"),
            ("%", r"\%"),
            ("_", r"\_"),
            ("#", r"\#"),
            ("±", r"$\pm$"),
            ("<=", r"$\le$"),
            ("*", r"$^*$"),
        ):
            s = s.replace(a, b)
        return s

    cols = "l" * len(d.columns)
    body = [" & ".join(esc(str(x)) for x in r) + r" \\" for _, r in d.iterrows()]
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            rf"\begin{{tabular}}{{{cols}}}",
            r"\hline",
            " & ".join(esc(c) for c in d.columns) + r" \\",
            r"\hline",
            *body,
            r"\hline",
            r"\end{tabular}",
            rf"\caption{{{esc(table.title)}. {esc(table.caption)}}}",
            r"\end{table}",
            "",
        ]
    )


def write_table(table: Table, out: Path) -> list[Path]:
    """<name>.md, <name>.tex and <name>.csv (numbers unformatted) in `out`."""
    paths = [out / f"{table.name}.{ext}" for ext in ("md", "tex", "csv")]
    paths[0].write_text(to_markdown(table))
    paths[1].write_text(to_latex(table))
    table.frame.to_csv(paths[2], index=False)
    return paths
