"""Property tests for the six randomization corruptions (Zhang et al. 2017, Section 2.1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rethink import corruptions as C
from rethink.errors import RethinkError

FEW = settings(max_examples=20, deadline=None)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def position_coded(n: int, c: int, h: int, w: int, offset: int = 0) -> torch.Tensor:
    """Images whose value names (image, channel, position): n*10^6 + pos*c + channel."""
    img = torch.arange(n, dtype=torch.float64).view(n, 1, 1) * 1e6 + offset * 1e6
    pos = torch.arange(h * w, dtype=torch.float64).view(1, 1, h * w) * c
    ch = torch.arange(c, dtype=torch.float64).view(1, c, 1)
    return (img + pos + ch).view(n, c, h, w)


def recovered_perms(x: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """The position permutation applied to each image of a position_coded tensor (N, H*W);
    asserts the channels moved together."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    base = torch.arange(n, dtype=torch.float64).view(n, 1) * 1e6 + offset * 1e6
    pos = (flat[:, 0, :] - base) / c
    for ch in range(c):
        assert torch.equal(flat[:, ch, :] - flat[:, 0, :], torch.full_like(pos, float(ch)))
    return pos.round().long()


labels_case = st.tuples(
    st.integers(2000, 6000),  # n
    st.integers(2, 100),  # k
    st.floats(0.0, 1.0),  # p
    st.integers(0, 2**31 - 1),  # seed
)


@FEW
@given(labels_case)
def test_partial_labels_change_fraction_is_binomial(case):
    n, k, p, seed = case
    y = torch.randint(0, k, (n,), generator=gen(seed + 1))
    out, changed = C.partial_labels(y, k, p, gen(seed))
    q = p * (k - 1) / k  # a replaced label may equal the old one
    sd = math.sqrt(n * q * (1 - q))
    assert abs(int(changed.sum()) - n * q) <= 5 * sd + 1
    assert torch.equal(changed, out != y)
    assert out.dtype == torch.int64 and int(out.min()) >= 0 and int(out.max()) < k


@FEW
@given(st.integers(2, 20), st.integers(0, 2**31 - 1))
def test_random_labels_are_uniform_and_independent_of_the_true_ones(k, seed):
    n = 20000
    y = torch.randint(0, k, (n,), generator=gen(seed + 7))
    res = C.apply("random-labels", torch.zeros(n, 1, 2, 2), y, torch.zeros(5, 1, 2, 2),
                  torch.zeros(5, dtype=torch.long), num_classes=k, generator=gen(seed))  # fmt: skip
    counts = np.bincount(res.y_train.numpy(), minlength=k)
    assert stats.chisquare(counts).pvalue > 1e-6
    table = np.zeros((k, k))
    np.add.at(table, (y.numpy(), res.y_train.numpy()), 1)
    assert stats.chi2_contingency(table + 1e-9)[1] > 1e-6
    assert abs(res.realized_fraction - (k - 1) / k) < 5 * math.sqrt(1 / n)
    assert torch.equal(res.y_test, torch.zeros(5, dtype=torch.long))  # test labels stay true


image_case = st.tuples(
    st.integers(2, 30),  # n train
    st.integers(1, 12),  # n test
    st.sampled_from([1, 3]),  # channels
    st.integers(2, 9),  # h
    st.integers(2, 9),  # w
    st.integers(0, 2**31 - 1),  # seed
)


@FEW
@given(image_case)
def test_shuffled_pixels_is_one_permutation_for_all_train_and_test_images(case):
    n, m, c, h, w, seed = case
    xtr, xte = position_coded(n, c, h, w), position_coded(m, c, h, w, offset=n)
    res = C.apply("shuffled-pixels", xtr, torch.zeros(n, dtype=torch.long), xte,
                  torch.zeros(m, dtype=torch.long), num_classes=2, generator=gen(seed))  # fmt: skip
    perms = torch.cat([recovered_perms(res.x_train), recovered_perms(res.x_test, offset=n)])
    assert (perms == perms[0]).all()  # the same permutation everywhere
    assert torch.equal(perms[0].sort().values, torch.arange(h * w))
    if h * w >= 9:  # identity has probability 1/(h*w)! < 3e-6
        assert not torch.equal(perms[0], torch.arange(h * w))
        assert res.changed.all() and res.test_changed.all()


@FEW
@given(image_case, st.booleans())
def test_random_pixels_keep_each_image_values_and_differ_between_images(case, corrupt_test):
    n, m, c, h, w, seed = case
    xtr, xte = position_coded(n, c, h, w), position_coded(m, c, h, w, offset=n)
    res = C.apply("random-pixels", xtr, torch.zeros(n, dtype=torch.long), xte,
                  torch.zeros(m, dtype=torch.long), num_classes=2, generator=gen(seed),
                  corrupt_test=corrupt_test)  # fmt: skip
    flat_in, flat_out = xtr.reshape(n, -1), res.x_train.reshape(n, -1)
    assert torch.equal(flat_in.sort(1).values, flat_out.sort(1).values)  # same multiset
    perms = recovered_perms(res.x_train)
    if h * w >= 16:  # two equal permutations of >= 16 positions: probability < 1e-13
        assert len({tuple(p.tolist()) for p in perms}) == n
    if corrupt_test:
        assert torch.equal(xte.reshape(m, -1).sort(1).values,
                           res.x_test.reshape(m, -1).sort(1).values)  # fmt: skip
        if h * w >= 16:
            assert res.test_changed.all()
    else:
        assert torch.equal(res.x_test, xte) and not res.test_changed.any()


@FEW
@given(st.integers(0, 2**31 - 1), st.booleans())
def test_gaussian_matches_the_data_mean_and_variance_per_channel(seed, corrupt_test):
    g = gen(seed + 3)
    n, c, h, w = 400, 3, 8, 8
    scale = torch.tensor([0.1, 0.3, 0.05]).view(1, c, 1, 1)
    shift = torch.tensor([0.2, 0.5, 0.8]).view(1, c, 1, 1)
    xtr = torch.rand(n, c, h, w, generator=g) * scale + shift
    xte = torch.rand(50, c, h, w, generator=g)
    res = C.apply("gaussian", xtr, torch.zeros(n, dtype=torch.long), xte,
                  torch.zeros(50, dtype=torch.long), num_classes=2, generator=gen(seed),
                  corrupt_test=corrupt_test)  # fmt: skip
    mean_in, std_in = C.channel_stats(xtr)
    mean_out, std_out = C.channel_stats(res.x_train)
    count = n * h * w
    assert torch.all((mean_out - mean_in).abs() <= 5 * std_in / math.sqrt(count))
    # the sample variance of normal data has relative sd sqrt(2 / count)
    assert torch.all((std_out**2 / std_in**2 - 1).abs() <= 5 * math.sqrt(2 / count))
    assert stats.normaltest(res.x_train[:, 0].flatten().numpy()).pvalue > 1e-6
    assert res.changed.all() and res.realized_fraction == 1.0
    assert torch.equal(res.x_test, xte) != corrupt_test


@pytest.mark.parametrize("kind", C.KINDS)
def test_same_seed_same_result_other_seed_other_result(kind):
    g = gen(0)
    xtr, xte = torch.rand(200, 3, 6, 6, generator=g), torch.rand(20, 3, 6, 6, generator=g)
    ytr, yte = torch.randint(0, 10, (200,), generator=g), torch.randint(0, 10, (20,), generator=g)
    before = [t.clone() for t in (xtr, ytr, xte, yte)]
    p = 0.5 if kind == "partial-labels" else 0.0
    extra = {}
    if kind in C.HUMAN_KINDS:  # ready-aligned human labels (rethink.data.cifar10n's job)
        extra["human"] = torch.randint(0, 10, (200,), generator=gen(9))
    if kind == "noise-matrix":
        extra["matrix"] = torch.full((10, 10), 0.1, dtype=torch.float64)
    given = {k: v.clone() for k, v in extra.items()}

    def run(seed):
        return C.apply(kind, xtr, ytr, xte, yte, num_classes=10, generator=gen(seed), p=p, **extra)

    a, b, other = run(5), run(5), run(6)
    for name in ("x_train", "y_train", "x_test", "y_test", "changed"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for t, orig in zip((xtr, ytr, xte, yte), before, strict=True):
        assert torch.equal(t, orig)  # inputs untouched (pure)
    assert all(torch.equal(extra[k], given[k]) for k in extra)
    if kind == "none":
        assert not a.changed.any() and a.realized_fraction == 0.0
    elif kind in C.HUMAN_KINDS:  # fixed labels, nothing drawn: every seed gives the same
        assert torch.equal(a.y_train, other.y_train) and torch.equal(a.y_train, extra["human"])
        assert torch.equal(a.changed, extra["human"] != ytr) and torch.equal(a.y_test, yte)
    else:
        differs = [
            not torch.equal(getattr(a, n), getattr(other, n)) for n in ("x_train", "y_train")
        ]
        assert any(differs)
        assert a.realized_fraction == float(a.changed.float().mean()) > 0


@pytest.mark.parametrize(
    "kind,p",
    [("blur", 0.0), ("partial-labels", 1.5), ("partial-labels", -0.1),
     ("partial-labels", float("nan")), ("random-labels", 0.3), ("gaussian", 0.5),
     ("none", 0.2), ("none", 1.0)],
)  # fmt: skip
def test_bad_kind_or_probability_is_one_clear_error(kind, p):
    with pytest.raises(RethinkError) as err:
        C.apply(kind, torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long),
                torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long),
                num_classes=2, generator=gen(0), p=p)  # fmt: skip
    msg = str(err.value)
    assert msg.endswith(".") and "\n" not in msg
    if kind == "blur":
        assert all(k in msg for k in C.KINDS)


def test_new_kinds_take_exactly_their_own_inputs():
    x, y = torch.zeros(6, 1, 1, 1), torch.tensor([0, 1, 2, 0, 1, 2])
    human, t = torch.tensor([0, 1, 1, 0, 2, 2]), torch.eye(3, dtype=torch.float64)

    def apply(kind, **kw):
        return C.apply(kind, x, y, x, y, num_classes=3, generator=gen(0), **kw)

    res = apply("cifar10n-worst", human=human)
    assert res.changed.tolist() == [False, False, True, False, True, False]
    assert res.realized_fraction == pytest.approx(2 / 6)
    assert not apply("noise-matrix", matrix=t).changed.any()  # identity: nothing moves
    cases = [("cifar10n-aggre", {}, "needs the human labels"),
             ("partial-labels", {"human": human, "p": 0.1}, "takes no human labels"),
             ("noise-matrix", {}, "needs a K x K"),
             ("random-labels", {"matrix": t}, "takes no matrix"),
             ("noise-matrix", {"matrix": torch.eye(2)}, "3 x 3"),
             ("cifar10n-random1", {"human": human[:3]}, "3 human labels for 6"),
             ("cifar10n-random2", {"human": human, "corrupt_test": True}, "training images only"),
             ("noise-matrix", {"matrix": t, "p": 0.5}, "takes no probability")]  # fmt: skip
    for kind, kw, words in cases:
        with pytest.raises(RethinkError) as err:
            apply(kind, **kw)
        msg = str(err.value)
        assert msg.endswith(".") and "\n" not in msg and words in msg, (kind, msg)


def test_label_corruption_touches_test_labels_only_when_asked():
    y = torch.randint(0, 10, (3000,), generator=gen(1))
    x = torch.zeros(3000, 1, 1, 1)
    keep = C.apply("random-labels", x, y, x, y, num_classes=10, generator=gen(2))
    both = C.apply("random-labels", x, y, x, y, num_classes=10, generator=gen(2), corrupt_test=True)
    assert torch.equal(keep.y_test, y) and not keep.test_changed.any()
    assert 0.85 < float(both.test_changed.float().mean()) < 0.95
    assert torch.equal(keep.y_train, both.y_train)  # train drawn first: unaffected by the option
