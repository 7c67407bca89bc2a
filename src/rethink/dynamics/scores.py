"""Scores of memorization dynamics, computed from a store's per-example records only.

Every function below takes arrays shaped (E, N): row i is recorded epoch i, column j is
training example j (rethink.dynamics._records.load). Definitions, with citations, are in
docs/dynamics.md; in short:

- first_learned: the first recorded epoch at which an example is classified as its label;
  learned_for_good: the first epoch from which it stays so to the last record (NaN: never).
- learned_fraction: per epoch, the share of clean and of changed examples classified as their
  label: the learning order of Arpit et al. (2017).
- forgetting_events (Toneva et al., 2019): the number of times an example goes from correct at
  one evaluation to incorrect at the next; an example never learned counts as forgotten
  infinitely often (inf). Unforgettable: learned at some point and never forgotten.
- data_map (Swayamdipta et al., 2020): confidence = mean over epochs of p(label) = exp(-loss),
  variability = its standard deviation (population, divided by E), correctness = the share of
  epochs classified correctly.
- aum (Pleiss et al., 2020): the mean over epochs of the margin, logit of the label minus the
  largest other logit; aum_threshold / aum_flags: the 99th-percentile threshold-sample rule.
- roc_auc and precision_at_k: how well a score singles out the changed labels.

`run_scores` evaluates all of them for a run over its *training* epochs (epoch 0, the
evaluation before any step, is left out of the per-example scores; the learning-order curve
keeps it). `detection` ranks the changed labels by each score.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from scipy.stats import rankdata

from rethink.dynamics import _records
from rethink.errors import RethinkError

# (score name, key in run_scores, +1 if a high value flags a changed label, -1 if a low one)
DETECTORS = (
    ("first-learned epoch", "first_learned", +1),
    ("learned-for-good epoch", "learned_for_good", +1),
    ("forgetting events", "forgetting", +1),
    ("confidence", "confidence", -1),
    ("variability", "variability", -1),
    ("correctness", "correctness", -1),
    ("AUM", "aum", -1),
)


# ---- learning and forgetting ----------------------------------------------------------
def first_learned(correct: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    """(N,) float: the first epoch at which each example is correct; NaN if never."""
    correct = np.asarray(correct, bool)
    hit = correct.any(axis=0)
    idx = correct.argmax(axis=0)
    return np.where(hit, np.asarray(epochs, float)[idx], np.nan)


def learned_for_good(correct: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    """(N,) float: the first epoch from which each example is correct at every later record
    (the epoch after its last mistake); NaN if it is wrong at the last record."""
    correct = np.asarray(correct, bool)
    e = correct.shape[0]
    wrong = ~correct
    # index of the last wrong record, -1 if none
    last_wrong = np.where(wrong.any(axis=0), e - 1 - wrong[::-1].argmax(axis=0), -1)
    start = last_wrong + 1
    ep = np.asarray(epochs, float)
    return np.where(start < e, ep[np.minimum(start, e - 1)], np.nan)


def learned_fraction(correct: np.ndarray, changed: np.ndarray) -> dict[str, np.ndarray]:
    """{"clean": (E,), "changed": (E,)}: per epoch, the share of clean / changed examples
    classified as their label (NaN for an empty group)."""
    correct = np.asarray(correct, bool)
    changed = np.asarray(changed, bool)

    def share(mask: np.ndarray) -> np.ndarray:
        if not mask.any():
            return np.full(correct.shape[0], np.nan)
        return correct[:, mask].mean(axis=1)

    return {"clean": share(~changed), "changed": share(changed)}


def forgetting_events(correct: np.ndarray) -> np.ndarray:
    """(N,) float: transitions correct -> incorrect between consecutive records; inf for an
    example never correct (Toneva et al.: never learned = forgotten infinitely often)."""
    correct = np.asarray(correct, bool)
    events = (correct[:-1] & ~correct[1:]).sum(axis=0).astype(float)
    return np.where(correct.any(axis=0), events, np.inf)


def unforgettable(correct: np.ndarray) -> np.ndarray:
    """(N,) bool: learned at some record and never forgotten afterwards."""
    return forgetting_events(correct) == 0


# ---- data map and margins --------------------------------------------------------------
def data_map(loss: np.ndarray, correct: np.ndarray) -> dict[str, np.ndarray]:
    """confidence, variability, correctness (each (N,)) over the E records given."""
    p = np.exp(-np.asarray(loss, np.float64))  # (E, N) probability of the label
    return {
        "confidence": p.mean(axis=0),
        "variability": p.std(axis=0),  # ddof=0: sqrt(sum (p - mean)^2 / E)
        "correctness": np.asarray(correct, bool).mean(axis=0),
    }


def aum(margin: np.ndarray) -> np.ndarray:
    """(N,): area under the margin, the mean margin over the E records given."""
    return np.asarray(margin, np.float64).mean(axis=0)


def aum_threshold(aum_values: np.ndarray, threshold_mask: np.ndarray, q: float = 99.0) -> float:
    """The q-th percentile (linear interpolation) of the threshold samples' AUMs."""
    mask = np.asarray(threshold_mask, bool)
    if not mask.any():
        raise RethinkError("this run has no threshold samples, so the AUM rule has no cut-off.")
    return float(np.percentile(np.asarray(aum_values, float)[mask], q))


def aum_flags(aum_values: np.ndarray, threshold_mask: np.ndarray, q: float = 99.0) -> np.ndarray:
    """(N,) bool: the examples flagged as mislabelled: not threshold samples and with an AUM
    at or below the threshold samples' q-th percentile."""
    cut = aum_threshold(aum_values, threshold_mask, q)
    return (np.asarray(aum_values, float) <= cut) & ~np.asarray(threshold_mask, bool)


# ---- detection quality -----------------------------------------------------------------
def roc_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `score` (high = positive) for the labels `positive`:
    the Mann-Whitney statistic with ties counted half. NaN without both classes."""
    s = np.asarray(score, float)
    pos = np.asarray(positive, bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    if np.isnan(s).any():
        raise ValueError("scores must not be NaN")
    ranks = rankdata(s)  # average ranks for ties; +-inf rank at the ends
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_at_k(score: np.ndarray, positive: np.ndarray, k: int | None = None) -> float:
    """Share of positives among the k highest scores (k = the number of positives, i.e. the
    true noise rate, by default); examples tied at the cut count in proportion, which is the
    expectation over random tie-breaking."""
    s = np.asarray(score, float)
    pos = np.asarray(positive, bool)
    k = int(pos.sum()) if k is None else int(k)
    if k <= 0 or k > len(s):
        return float("nan")
    cut = np.sort(s)[::-1][k - 1]
    above, tied = s > cut, s == cut
    need = k - int(above.sum())
    hits = pos[above].sum() + need * pos[tied].mean()
    return float(hits / k)


# ---- per run ---------------------------------------------------------------------------
def run_scores(rec: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every per-example score of one run's records (rethink.dynamics._records.load) over its
    training epochs (epoch > 0), plus the learned fractions over all recorded epochs."""
    keep = rec["epochs"] > 0
    if not keep.any():
        raise RethinkError("this run has no example records after epoch 0 to score.")
    ep = rec["epochs"][keep]
    correct, loss, margin = rec["correct"][keep], rec["loss"][keep], rec["margin"][keep]
    out: dict[str, np.ndarray] = {
        "first_learned": first_learned(correct, ep),
        "learned_for_good": learned_for_good(correct, ep),
        "forgetting": forgetting_events(correct),
        "aum": aum(margin),
        **data_map(loss, correct),
    }
    out["unforgettable"] = out["forgetting"] == 0
    frac = learned_fraction(rec["correct"], rec["changed"])
    out["learned_clean"], out["learned_changed"] = frac["clean"], frac["changed"]
    if rec["threshold"].any():
        out["aum_flags"] = aum_flags(out["aum"], rec["threshold"])
    return out


def _suspicion(scores: dict[str, np.ndarray], key: str, sign: int, last: float) -> np.ndarray:
    v = np.asarray(scores[key], float)
    if key in ("first_learned", "learned_for_good"):
        v = np.where(np.isnan(v), last + 1, v)  # never (for good): after the last record
    return sign * v


def detection(rec: dict[str, np.ndarray], scores: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One row per score: ROC-AUC and precision at the true noise rate for singling out the
    changed labels (threshold samples left out), plus the AUM rule's precision and recall
    when the run has threshold samples. Empty if no label was changed (or all were)."""
    keep = ~rec["threshold"]
    changed = rec["changed"][keep]
    if not changed.any() or changed.all():
        return []
    last = float(rec["epochs"].max())
    rows = []
    for name, key, sign in DETECTORS:
        s = _suspicion(scores, key, sign, last)[keep]
        rows.append(
            {
                "score": name,
                "flags": "high" if sign > 0 else "low",
                "roc_auc": roc_auc(s, changed),
                "precision_at_noise_rate": precision_at_k(s, changed),
            }
        )
    if "aum_flags" in scores:
        flagged = scores["aum_flags"][keep]
        tp = float((flagged & changed).sum())
        rows.append(
            {
                "score": "AUM rule (99th pct of threshold samples)",
                "flags": "rule",
                "roc_auc": float("nan"),
                "precision_at_noise_rate": float("nan"),
                "rule_precision": tp / flagged.sum() if flagged.any() else float("nan"),
                "rule_recall": tp / changed.sum(),
            }
        )
    return rows


def summary(rec: dict[str, np.ndarray], scores: dict[str, np.ndarray]) -> dict[str, Any]:
    """Counts a reader wants first: examples, epochs, noise rate, unforgettable examples."""
    ch = rec["changed"]
    return {
        "examples": int(len(ch)),
        "epochs": int(len(rec["epochs"])),
        "last_epoch": int(rec["epochs"].max()) if len(rec["epochs"]) else None,
        "noise_rate": float(ch.mean()) if len(ch) else float("nan"),
        "unforgettable": int(scores["unforgettable"].sum()),
        "unforgettable_clean": int(scores["unforgettable"][~ch].sum()),
        "unforgettable_changed": int(scores["unforgettable"][ch].sum()),
        "never_learned": int(np.isinf(scores["forgetting"]).sum()),
    }


def store_scores(
    store: str | os.PathLike, run_ids: list[str] | None = None
) -> list[dict[str, Any]]:
    """For each run with records (or each of `run_ids`): run_id, label, summary, detection
    rows. Opens the store read-only."""
    from rethink.store import Store

    with Store(store, readonly=True) as st:
        ids = run_ids if run_ids else _records.record_runs(st.db)
        if not ids:
            raise RethinkError(f"the store {store} has no runs with example records.")
        out = []
        for rid in ids:
            run = st.get_run(rid)
            if run is None:
                raise RethinkError(f"the store {store} has no run {rid}.")
            rec = _records.load(st.db, rid)
            sc = run_scores(rec)
            out.append(
                {
                    "run_id": rid,
                    "label": run_label(run["spec"]),
                    "summary": summary(rec, sc),
                    "detection": detection(rec, sc),
                }
            )
    return out


def run_label(spec: dict[str, Any]) -> str:
    """'mlp-1x512 partial-labels p=0.4 on cifar10-jpeg' from a stored spec dict."""
    c, m, d = spec.get("corruption", {}), spec.get("model", {}), spec.get("data", {})
    kind = c.get("kind", "none")
    if kind == "partial-labels":
        kind = f"uniform p={c.get('prob', 0):g}"
    elif kind == "noise-matrix":
        kind = f"noise-matrix({c.get('matrix')})"
    elif kind == "none":
        kind = "true labels"
    return f"{m.get('name', '?')} {kind} on {d.get('dataset', '?')}"
