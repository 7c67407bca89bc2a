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
from rethink.report._names import (
    CORRUPTION_FIELDS,
    SEED_FIELDS,
    dataset_name,
    field_name,
    groups,
    model_name,
    run_corruption,
    value_text,
    varying,
)

# The paper's dataset: CIFAR-10, and the same 60,000 images re-encoded as JPEG (same split
# and labels; results labelled "CIFAR-10 (JPEG)" so the difference stays visible).
PAPER_DATASETS = ("cifar10", "cifar10-jpeg")
_UNVERIFIED = "*"  # marks a paper number taken from a secondary source


@dataclass
class Table:
    name: str
    title: str
    frame: pd.DataFrame
    caption: str


def setting_name(label: str) -> str:
    """A run's label without its seed and section prefixes (kept for old callers); tables and
    figures name groups with `rethink.report._names.group_name` instead."""
    text = re.sub(r"\s*\bseed=\S+", "", label or "").strip()
    text = re.sub(r"\b(corruption|model|train|data)\.", "", text)
    return text or "base"


def describe_setting(runs: pd.DataFrame) -> str:
    """One sentence about the data, models and schedule these runs used."""

    def vals(col: str) -> str:
        v = sorted({value_text(col, x) for x in runs[col].dropna()}) if col in runs else []
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


def _base_row(first: pd.Series, fields: list[str]) -> dict:
    """dataset, model, the corruption's name and one column per other field that differs."""
    row = {
        "dataset": dataset_name(first["data.dataset"]),
        "model": model_name(first["model.name"]),
        "setting": run_corruption(first),
    }
    for f in fields:
        if f not in ("data.dataset", "model.name", *CORRUPTION_FIELDS):
            row[field_name(f)] = value_text(f, first.get(f))
    return row


def _drop_empty(frame: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Drop the paper columns no row fills: no paper number for any of these settings."""
    empty = [c for c in cols if c in frame and frame[c].isna().all()]
    return frame.drop(columns=empty)


def results_table(runs: pd.DataFrame, name: str) -> Table:
    """One row per setting (only seeds pooled): final train/test accuracy and the paper's
    beside them where the setting is the paper's (dataset, model, corruption, crop, weight
    decay); elsewhere the paper's number for the same model on CIFAR-10 in a separate,
    labelled reference column."""
    fields = varying(runs)
    rows = []
    for first, g in groups(runs, fields):
        row = _base_row(first, fields)
        row["runs"] = len(g)
        row["done"] = int(g["status"].isin(["finished", "diverged"]).sum())
        for col, key in (
            ("train acc", "r.train_acc"),
            ("test acc", "r.test_acc"),
            ("best test acc", "r.best_test_acc"),
        ):
            row[col], row[f"{col} sd"] = _mean_sd(g.get(key, pd.Series(dtype=float)), 100)
        row["epochs"], _ = _mean_sd(g.get("r.epochs", pd.Series(dtype=float)))
        ptrain, ptest, pnote = _paper_for(first)
        same = first["data.dataset"] in PAPER_DATASETS
        row["paper train"] = ptrain if same else math.nan
        row["paper test"] = ptest if same else math.nan
        row["paper source"] = pnote if same and pnote else None
        ref = None
        if not same and pnote:
            ref = f"{_pct(ptrain)} / {_pct(ptest)} ({pnote})"
        row[_REF_COL] = ref
        rows.append(row)
    frame = _drop_empty(pd.DataFrame(rows), ["paper train", "paper test", "paper source", _REF_COL])
    caption = (
        "Final training and test accuracy (%), mean and sample sd over seeds (only runs that "
        f"differ by seed alone are pooled). {describe_setting(runs)}" + _paper_caption(frame)
    )
    return Table(f"{name}-results", f"{name}: results", frame, caption)


_REF_COL = "paper: CIFAR-10, same model (train / test)"


def _paper_caption(frame: pd.DataFrame) -> str:
    parts = []
    if "paper test" in frame:
        parts.append(
            " Paper columns: Zhang et al. (ICLR 2017), the same setting on CIFAR-10 (Table 1; "
            f"random labels with a regularizer: the appendix, marked {_UNVERIFIED} where "
            "taken from a secondary source)."
        )
    if _REF_COL in frame:
        parts.append(
            f" The column '{_REF_COL}' is a reference from a different setting (the paper's "
            "CIFAR-10 run of the same model, corruption and regularizers), not a comparison."
        )
    return "".join(parts)


def _pct(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


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


def _panels(runs: pd.DataFrame, exclude: tuple[str, ...]) -> tuple[list[str], list]:
    """The fields that differ besides `exclude` (and seeds), and the groups they make."""
    fields = varying(runs, exclude=(*SEED_FIELDS, *exclude))
    return fields, groups(runs, fields)


def fig1a_table(runs: pd.DataFrame, epochs: pd.DataFrame, name: str) -> Table | None:
    """Steps to fit per corruption setting, relative to true labels in the same setting
    otherwise, beside the third-party Fig. 1a numbers (same setting) or as a labelled
    reference (other settings)."""
    sub = runs[~runs["kind"].eq("partial-labels")]
    if sub["kind"].nunique() < 2:
        return None
    fields, panels = _panels(sub, CORRUPTION_FIELDS)
    rows = []
    for first, g in panels:
        is_true = g["kind"] == "none"
        base_fit, _ = _mean_sd(g.loc[is_true, "r.steps_to_fit"])
        base_loss = _nanmean([_steps_to_loss(epochs, r) for r in g.loc[is_true, "run_id"]])
        same = first["data.dataset"] in PAPER_DATASETS and first["model.name"] == "inception-small"
        for kfirst, k in groups(g, list(CORRUPTION_FIELDS)):
            fit, fit_sd = _mean_sd(k["r.steps_to_fit"])
            loss_mean = _nanmean([_steps_to_loss(epochs, r) for r in k["run_id"]])
            pk = paper.FIG1A_STEPS_TO_LOSS_0_1.get(kfirst["kind"], math.nan)
            row = _base_row(kfirst, fields)
            row.update(
                {
                    "runs": len(k),
                    "fit (of runs)": int(k["r.steps_to_fit"].notna().sum()),
                    "steps to 100% train": fit,
                    "steps to 100% train sd": fit_sd,
                    "relative": fit / base_fit if base_fit else math.nan,
                    "steps to loss<=0.1": loss_mean,
                    "relative (loss)": loss_mean / base_loss if base_loss else math.nan,
                    "train acc": _mean_sd(k["r.train_acc"], 100)[0],
                    "test acc": _mean_sd(k["r.test_acc"], 100)[0],
                }
            )
            rel = pk / paper.FIG1A_STEPS_TO_LOSS_0_1["none"]
            if same:
                row[f"paper steps to loss<=0.1{_UNVERIFIED}"] = pk
                row[f"paper relative{_UNVERIFIED}"] = rel
            else:
                row[_FIG1A_REF] = rel
            rows.append(row)
    frame = pd.DataFrame(rows)
    ref = (
        f" The column '{_FIG1A_REF}' is a reference from a different setting, not a comparison."
        if _FIG1A_REF in frame
        else ""
    )
    caption = (
        f"Fig. 1a: optimization steps until the training set is fit (100% training accuracy) "
        f"and until the training loss is at most 0.1, per corruption, mean over seeds; "
        f"relative to true labels in the same setting. {describe_setting(sub)} Reference "
        f"numbers: {paper.FIG1A_SOURCE} (small Inception on CIFAR-10, batch 128; "
        f"unverified, marked {_UNVERIFIED}).{ref}"
    )
    return Table(f"{name}-fig1a", f"{name}: Fig. 1a, time to fit", frame, caption)


_FIG1A_REF = f"reference relative{_UNVERIFIED} (CIFAR-10, Inception (small))"


def _nanmean(xs: list[float]) -> float:
    x = np.asarray(xs, dtype=float)
    return float(np.nanmean(x)) if np.isfinite(x).any() else math.nan


def _steps_to_loss(epochs: pd.DataFrame, run_id: str, threshold: float = 0.1) -> float:
    if epochs.empty:
        return math.nan
    e = epochs[(epochs["run_id"] == run_id) & (epochs["train_loss"] <= threshold)]
    return float(e["step"].min()) if len(e) else math.nan


def fig1bc_table(runs: pd.DataFrame, name: str) -> Table | None:
    """Per setting and label-corruption level p: steps to fit relative to p=0, test error."""
    sub = runs[runs["p"].notna()]
    if sub["p"].nunique() < 3:
        return None
    fields, lines = _panels(sub, ("corruption.kind", "corruption.prob"))
    rows = []
    for _, g in lines:
        base, _ = _mean_sd(g.loc[g["p"] == 0, "r.steps_to_fit"])
        for p, k in sorted(g.groupby("p"), key=lambda t: t[0]):
            fit, fit_sd = _mean_sd(k["r.steps_to_fit"])
            err, err_sd = _mean_sd(1 - pd.to_numeric(k["r.test_acc"]), 100)
            row = _base_row(k.iloc[0], fields)
            del row["setting"]
            row.update(
                {
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
            rows.append(row)
    caption = (
        "Fig. 1b/1c: steps until 100% training accuracy relative to true labels (p = 0), and "
        f"test error (%) at the end of training, per label-corruption level p (p = 0: true "
        f"labels, p = 1: random labels). {describe_setting(sub)} For reference, the paper "
        "(CIFAR-10; small Inception, AlexNet, MLP 1x512) reports convergence slowing by a small "
        "factor as p grows and test error rising steadily to 90% (chance) at p = 1."
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


def _numeric(frame: pd.DataFrame) -> list[bool]:
    """Per displayed column: is it a number (right-aligned)?"""
    return [
        pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        for c in frame.columns
        if not c.endswith(" sd")
    ]


def to_markdown(table: Table) -> str:
    """A pipe table (tabulate): numbers right-aligned, '|' in cells escaped."""
    d = display_frame(table.frame)
    d = d.map(lambda s: str(s).replace("|", "\\|"))
    d.columns = [str(c).replace("|", "\\|") for c in d.columns]
    align = ["right" if n else "left" for n in _numeric(table.frame)]
    body = d.to_markdown(index=False, tablefmt="pipe", colalign=align, disable_numparse=True)
    return f"**{table.title}.** {table.caption}\n\n{body}\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Plain text for LaTeX: the ten special characters escaped, as pandas' Styler does."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _latex_symbols(text: str) -> str:
    return text.replace("±", r"$\pm$").replace("<=", r"$\le$")


def to_latex(table: Table) -> str:
    """A booktabs table (pandas Styler, cells and headers escaped), numbers right-aligned."""
    d = display_frame(table.frame)
    cols = "".join("r" if n else "l" for n in _numeric(table.frame))
    styler = d.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    caption = _latex_symbols(latex_escape(f"{table.title}. {table.caption}"))
    body = styler.to_latex(
        column_format=cols,
        hrules=True,
        position="t",
        position_float="centering",
        caption=caption,
        label=f"tab:{table.name}",
    )
    return _latex_symbols(body.replace("\\begin{table}[t]\n", "\\begin{table}[t]\n\\small\n", 1))


def write_table(table: Table, out: Path) -> list[Path]:
    """<name>.md, <name>.tex and <name>.csv (numbers unformatted) in `out`."""
    paths = [out / f"{table.name}.{ext}" for ext in ("md", "tex", "csv")]
    paths[0].write_text(to_markdown(table))
    paths[1].write_text(to_latex(table))
    table.frame.to_csv(paths[2], index=False)
    return paths
