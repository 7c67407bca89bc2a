"""Each score of rethink.dynamics.scores against a tiny record array worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from rethink.dynamics import example_arrays, threshold_samples
from rethink.dynamics import scores as S
from rethink.errors import RethinkError

T, F = True, False
EPOCHS = np.array([1, 2, 3, 4, 5])
# rows: epochs 1..5; columns: examples 0..4
CORRECT = np.array(
    [
        # ex0 ex1 ex2 ex3 ex4
        [T, F, F, T, F],
        [T, T, F, F, F],
        [T, F, F, T, F],
        [T, T, F, F, F],
        [T, T, F, F, T],
    ]
)
MARGIN = np.array(
    [
        [1.0, -1.0, -2.0, 0.5, -3.0],
        [2.0, 0.5, -2.0, -0.5, -2.0],
        [3.0, -0.5, -1.0, 0.25, -1.0],
        [4.0, 1.0, -1.0, -0.25, -0.5],
        [5.0, 2.0, -4.0, -1.0, 0.5],
    ],
    dtype=np.float16,
)


def test_first_learned_and_learned_for_good_by_hand():
    # ex0 right from epoch 1; ex1 first at 2, wrong at 3, right from 4 on; ex2 never;
    # ex3 right at 1 and 3 but wrong at the end; ex4 only at the last epoch.
    first = S.first_learned(CORRECT, EPOCHS)
    good = S.learned_for_good(CORRECT, EPOCHS)
    np.testing.assert_array_equal(first, [1, 2, np.nan, 1, 5])
    np.testing.assert_array_equal(good, [1, 4, np.nan, np.nan, 5])


def test_forgetting_events_and_unforgettable_by_hand():
    # ex1: 2->3 is one forgetting event; ex3: 1->2 and 3->4 are two; ex2 was never learned,
    # so it counts as forgotten infinitely often (Toneva et al.) and is not unforgettable.
    np.testing.assert_array_equal(S.forgetting_events(CORRECT), [0, 1, np.inf, 2, 0])
    np.testing.assert_array_equal(S.unforgettable(CORRECT), [T, F, F, F, T])


def test_aum_is_the_mean_margin_by_hand():
    # ex0 (1+2+3+4+5)/5 = 3; ex1 (-1+0.5-0.5+1+2)/5 = 0.4; ex2 -10/5 = -2;
    # ex3 (0.5-0.5+0.25-0.25-1)/5 = -0.2; ex4 (-3-2-1-0.5+0.5)/5 = -1.2
    np.testing.assert_allclose(S.aum(MARGIN), [3.0, 0.4, -2.0, -0.2, -1.2], atol=1e-12)


def test_data_map_by_hand():
    p = np.array([[0.2, 1.0], [0.4, 1.0], [0.6, 0.5]])
    loss = -np.log(p)
    correct = np.array([[F, T], [F, T], [T, F]])
    dm = S.data_map(loss, correct)
    np.testing.assert_allclose(dm["confidence"], [0.4, 2.5 / 3])
    # population sd: sqrt(((-0.2)^2 + 0 + 0.2^2) / 3); sqrt((2 * (1/6)^2 + (1/3)^2) / 3)
    np.testing.assert_allclose(
        dm["variability"], [np.sqrt(0.08 / 3), np.sqrt((2 / 36 + 1 / 9) / 3)]
    )
    np.testing.assert_allclose(dm["correctness"], [1 / 3, 2 / 3])


def test_learned_fraction_by_hand():
    changed = np.array([F, T, T, F, T])
    frac = S.learned_fraction(CORRECT, changed)
    np.testing.assert_allclose(frac["clean"], [1.0, 0.5, 1.0, 0.5, 0.5])  # ex0, ex3
    np.testing.assert_allclose(frac["changed"], [0, 1 / 3, 0, 1 / 3, 2 / 3])  # ex1, ex2, ex4


def test_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(5, 200))
        score = rng.integers(0, 6, n).astype(float)  # many ties
        pos = rng.random(n) < 0.3
        if pos.all() or not pos.any():
            continue
        assert S.roc_auc(score, pos) == pytest.approx(roc_auc_score(pos, score), abs=1e-12)
    assert np.isnan(S.roc_auc([1.0, 2.0], [T, T]))
    # infinities (never-learned examples' forgetting counts) rank above every finite value
    assert S.roc_auc([0, 1, np.inf, 2], [F, F, T, F]) == 1.0


def test_precision_at_k_counts_ties_in_proportion():
    # top 2 of [3, 2, 2, 1]: the 3 (a positive) and one of the two tied 2s (half positive)
    assert S.precision_at_k([3, 2, 2, 1], [T, F, T, F]) == pytest.approx(0.75)
    assert S.precision_at_k([4, 3, 2, 1], [T, T, F, F]) == 1.0
    assert S.precision_at_k([1, 2, 3, 4], [T, T, F, F]) == 0.0


def test_aum_threshold_rule_by_hand():
    aum = np.array([-2.0, -1.0, 0.0, 1.0, 0.5, 0.96, 0.98, 3.0])
    thr = np.array([T, T, T, T, F, F, F, F])
    # 99th percentile of [-2, -1, 0, 1] with linear interpolation: 0 + 0.97 * (1 - 0) = 0.97
    assert S.aum_threshold(aum, thr) == pytest.approx(0.97)
    np.testing.assert_array_equal(S.aum_flags(aum, thr), [F, F, F, F, T, T, F, F])
    with pytest.raises(RethinkError):
        S.aum_threshold(aum, np.zeros(8, bool))


def test_threshold_samples_moves_n_over_k_plus_1_to_the_extra_class():
    y = torch.arange(10).repeat(5)  # N = 50, K = 10 -> 50 // 11 = 4 threshold samples
    y_new, mask = threshold_samples(y, 10, torch.Generator().manual_seed(0))
    assert int(mask.sum()) == 4 and (y_new[mask] == 10).all()
    assert torch.equal(y_new[~mask], y[~mask])
    again, mask2 = threshold_samples(y, 10, torch.Generator().manual_seed(0))
    assert torch.equal(mask, mask2) and torch.equal(again, y_new)
    _, other = threshold_samples(y, 10, torch.Generator().manual_seed(0), exclude=mask)
    assert int(other.sum()) == 4 and not (other & mask).any()


def test_example_arrays_by_hand():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 1.0, 5.0]])
    labels = torch.tensor([0, 2, 1])
    a = example_arrays(logits, labels)
    np.testing.assert_array_equal(a["correct"], [T, F, F])
    np.testing.assert_array_equal(a["pred"], [0, 1, 2])
    np.testing.assert_allclose(a["margin"].astype(float), [1.0, -2.0, -4.0], atol=1e-3)
    lse = (
        np.log(np.exp([2, 1, 0]).sum()),
        np.log(np.exp([0, 3, 1]).sum()),
        np.log(np.exp([1, 1, 5]).sum()),
    )
    np.testing.assert_allclose(
        a["loss"].astype(float), [lse[0] - 2, lse[1] - 1, lse[2] - 1], rtol=1e-3
    )
    assert a["margin"].dtype == np.float16 and a["loss"].dtype == np.float16
    assert a["pred"].dtype == np.uint8 and a["correct"].dtype == bool


def test_run_scores_leave_out_epoch_0_and_detection_ranks_changed_labels():
    # epoch 0 (before training) is all correct by chance; it must not count as learning
    correct = np.vstack([np.ones(5, bool), CORRECT])
    rec = {
        "epochs": np.arange(6),
        "correct": correct,
        "margin": np.vstack([np.zeros(5, np.float16), MARGIN]),
        "loss": np.zeros((6, 5), np.float16),
        "changed": np.array([F, T, T, F, T]),
        "threshold": np.zeros(5, bool),
    }
    sc = S.run_scores(rec)
    np.testing.assert_array_equal(sc["first_learned"], [1, 2, np.nan, 1, 5])
    np.testing.assert_array_equal(sc["forgetting"], [0, 1, np.inf, 2, 0])
    np.testing.assert_allclose(sc["learned_changed"], [1, 0, 1 / 3, 0, 1 / 3, 2 / 3])
    rows = {r["score"]: r for r in S.detection(rec, sc)}
    # first-learned (never -> 6): clean [1, 1], changed [2, 6, 5] -> every pair ranked right
    assert rows["first-learned epoch"]["roc_auc"] == 1.0
    assert rows["first-learned epoch"]["precision_at_noise_rate"] == 1.0
    # AUM: clean [3, -0.2], changed [0.4, -2, -1.2]: low flags; 5 of 6 pairs ordered right
    assert rows["AUM"]["roc_auc"] == pytest.approx(5 / 6)
