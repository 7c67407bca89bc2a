"""Scoring measures against the generalization gap over the runs of a sweep.

- `kendall_tau(a, b)`: Kendall's tau-b (ties in either variable handled as scipy's default).
- `granulated_tau(values, gaps, hparams)`: Jiang et al. (2020), eq. 4: for each hyperparameter
  axis i, tau over each group of runs that agree on every other axis (they differ only in
  axis i; seeds are pooled), averaged over the groups (psi_i), then averaged over the axes.
- `conditional_mi(values, gaps, hparams)`: the PGDL competition's score (Jiang et al. 2020,
  Section 6; Jiang, Foret et al. 2020, "NeurIPS 2020 competition: predicting generalization in
  deep learning", arXiv:2012.07976): over all pairs of runs, V_mu = [mu(a) > mu(b)] and
  V_g = [g(a) > g(b)]; for a set S of two axes, U_S = the pair's values of those axes; the
  mutual information I(V_mu; V_g | U_S) (bits) over the H(V_g | U_S) it could explain,
  minimized over all pairs of axes.

`hparams` is one dict per run, {axis: value}; `hyperparameter_axes` derives it from specs.
NaN measure values drop the run from that measure's scores.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from rethink.store import flatten_spec

# spec keys that never count as hyperparameter axes: the seed is noise (runs differing only
# in seed are pooled into one group), the rest is bookkeeping
NOT_AXES = ("seed", "train.checkpoint_every", "train.record_examples")
LABEL_NOISE_KINDS = ("none", "partial-labels", "random-labels")


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b of two equally long sequences; NaN if fewer than two pairs or if
    either is constant."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) != len(y):
        raise ValueError("kendall_tau needs two sequences of the same length")
    if len(x) < 2:
        return math.nan
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    n0 = len(i)
    tx, ty = int((dx == 0).sum()), int((dy == 0).sum())
    denom = math.sqrt((n0 - tx) * (n0 - ty))
    return float((dx * dy).sum() / denom) if denom > 0 else math.nan


def granulated_tau(
    values: Sequence[float], gaps: Sequence[float], hparams: Sequence[dict[str, Any]]
) -> float:
    """Jiang et al.'s granulated Kendall coefficient Psi = mean_i psi_i over the axes with at
    least one group of two or more runs; psi_i = mean tau over those groups (NaN taus, e.g. a
    constant gap within a group, are left out). NaN if no axis has such a group."""
    axes = sorted({k for h in hparams for k in h})
    psis = []
    for axis in axes:
        groups: dict[tuple, list[int]] = defaultdict(list)
        for idx, h in enumerate(hparams):
            key = tuple((k, repr(h.get(k))) for k in axes if k != axis)
            groups[key].append(idx)
        taus = []
        for members in groups.values():
            if len({repr(hparams[m].get(axis)) for m in members}) < 2:
                continue
            t = kendall_tau([values[m] for m in members], [gaps[m] for m in members])
            if not math.isnan(t):
                taus.append(t)
        if taus:
            psis.append(sum(taus) / len(taus))
    return float(sum(psis) / len(psis)) if psis else math.nan


def _entropy(counts: np.ndarray) -> float:
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())


def _mi(table: np.ndarray) -> float:
    """Mutual information (bits) of a 2 x 2 count table."""
    total = table.sum()
    if total == 0:
        return 0.0
    joint = table / total
    pa, pb = joint.sum(1), joint.sum(0)
    mi = 0.0
    for i in range(2):
        for j in range(2):
            if joint[i, j] > 0:
                mi += joint[i, j] * math.log2(joint[i, j] / (pa[i] * pb[j]))
    return mi


def _cmi_given(
    values: np.ndarray, gaps: np.ndarray, hparams: Sequence[dict[str, Any]], axes: tuple
) -> float:
    """I(V_mu; V_g | U_S) / H(V_g | U_S) over ordered pairs of distinct runs, each slice of
    U_S weighted by its share of the pairs. NaN if H(V_g | U_S) = 0."""
    slices: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros((2, 2)))
    n = len(values)
    for a, b in itertools.permutations(range(n), 2):
        u = tuple((repr(hparams[a].get(k)), repr(hparams[b].get(k))) for k in axes)
        slices[u][int(gaps[a] > gaps[b]), int(values[a] > values[b])] += 1
    total = sum(t.sum() for t in slices.values())
    if total == 0:
        return math.nan
    mi = sum(t.sum() / total * _mi(t) for t in slices.values())
    h = sum(t.sum() / total * _entropy(t.sum(1)) for t in slices.values())
    return mi / h if h > 0 else math.nan


def conditional_mi(
    values: Sequence[float], gaps: Sequence[float], hparams: Sequence[dict[str, Any]]
) -> float:
    """The PGDL score: min over pairs S of axes of I(V_mu; V_g | U_S) / H(V_g | U_S) (the
    module docstring). With fewer than two axes, S is every axis there is (one, or none: then
    it is the plain normalized mutual information). NaN-valued conditionings are skipped."""
    v, g = np.asarray(values, dtype=float), np.asarray(gaps, dtype=float)
    axes = sorted({k for h in hparams for k in h})
    sets = list(itertools.combinations(axes, 2)) if len(axes) >= 2 else [tuple(axes)]
    scores = [s for s in (_cmi_given(v, g, hparams, S) for S in sets) if not math.isnan(s)]
    return float(min(scores)) if scores else math.nan


def is_random_labels(spec: dict[str, Any]) -> bool:
    """Whether a stored spec trained on fully random labels (random-labels, or prob 1)."""
    c = spec.get("corruption", {})
    kind, prob = c.get("kind"), c.get("prob")
    return kind == "random-labels" or (kind == "partial-labels" and prob == 1.0)


def hyperparameter_axes(specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """{axis: value} per run: the flattened spec keys whose values differ between the runs,
    without the seed and bookkeeping keys (NOT_AXES). When every run's corruption is none,
    partial-labels or random-labels, corruption.prob (0, p, 1) alone is the label-noise axis
    and corruption.kind is dropped, so random labels and p = 1 are one level."""
    flat = [flatten_spec(s) for s in specs]
    keys = sorted({k for f in flat for k in f})
    varying = [k for k in keys if k not in NOT_AXES and len({repr(f.get(k)) for f in flat}) > 1]
    kinds = {f.get("corruption.kind") for f in flat}
    if kinds <= set(LABEL_NOISE_KINDS):
        varying = [k for k in varying if k != "corruption.kind"]
        if "corruption.prob" not in varying and len(kinds) > 1:
            varying.append("corruption.prob")
    return [{k: f.get(k) for k in varying} for f in flat]


def score_table(rows: Sequence[dict[str, Any]], measures: Sequence[str]) -> list[dict[str, Any]]:
    """Scores of each measure over `rows` (one per run: "spec", "gap", "test_error" and a
    value per measure name, NaN where missing), with random-label runs included and then
    excluded. One dict per (measure, random_labels) with the keys of `rethink measures
    --json`: measure, kendall_tau, granulated_tau, pgdl_cmi, runs, plus random_labels
    ("included" / "excluded") and kendall_tau_test_error."""
    out = []
    for which in ("included", "excluded"):
        subset = [r for r in rows if which == "included" or not is_random_labels(r["spec"])]
        for name in measures:
            keep = [r for r in subset if not _missing(r.get(name))]
            vals = [float(r[name]) for r in keep]
            gaps = [float(r["gap"]) for r in keep]
            errs = [float(r["test_error"]) for r in keep]
            hp = hyperparameter_axes([r["spec"] for r in keep]) if keep else []
            out.append(
                {
                    "measure": name,
                    "kendall_tau": _json_float(kendall_tau(vals, gaps)),
                    "granulated_tau": _json_float(granulated_tau(vals, gaps, hp)),
                    "pgdl_cmi": _json_float(conditional_mi(vals, gaps, hp)),
                    "runs": len(keep),
                    "random_labels": which,
                    "kendall_tau_test_error": _json_float(kendall_tau(vals, errs)),
                }
            )
    return out


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v)))


def _json_float(v: float) -> float | None:
    return None if math.isnan(v) else round(float(v), 6)
