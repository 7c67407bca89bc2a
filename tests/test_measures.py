"""Each measure against an independent computation on a tiny model (rethink.measures)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from rethink import models
from rethink.measures import _flatness as FL
from rethink.measures import _norms as N
from rethink.measures._layers import conv_operator_norm, spectral, weight_layers
from rethink.measures._score import (
    conditional_mi,
    granulated_tau,
    hyperparameter_axes,
    kendall_tau,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp(sizes, seed=0):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(nn.Flatten(), *layers[:-1]).double().eval()


def _explicit_matrix(fn, in_shape):
    """The matrix of a linear map on tensors of shape (1, *in_shape), column by column."""
    n = math.prod(in_shape)
    cols = []
    for i in range(n):
        e = torch.zeros(n, dtype=torch.float64)
        e[i] = 1.0
        cols.append(fn(e.reshape(1, *in_shape)).reshape(-1))
    return torch.stack(cols, 1).detach().numpy()


def test_linear_spectral_norms_match_numpy_svd():
    net = _mlp([5, 7, 3])
    layers = weight_layers(net, torch.randn(2, 5, dtype=torch.float64))
    assert [lay.kind for lay in layers] == ["linear", "linear"]
    for lay, lin in zip(layers, [net[1], net[3]], strict=True):
        top = np.linalg.svd(lin.weight.detach().numpy(), compute_uv=False)[0]
        assert spectral(lay) == pytest.approx(top, rel=1e-10)


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 1), (1, 0)])
def test_conv_operator_norm_matches_svd_of_the_explicit_conv_matrix(stride, padding):
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 3, 3, stride=stride, padding=padding).double()
    shape = (2, 5, 6)
    mat = _explicit_matrix(
        lambda v: nn.functional.conv2d(v, conv.weight, None, stride, padding), shape
    )
    top = np.linalg.svd(mat, compute_uv=False)[0]
    got = conv_operator_norm(conv.weight, conv, shape, iters=2000, tol=1e-12)
    assert got == pytest.approx(top, rel=1e-6)
    # the reshaped kernel's norm is a different number: the operator norm is what we report
    reshaped = np.linalg.svd(conv.weight.detach().reshape(3, -1).numpy(), compute_uv=False)[0]
    assert abs(reshaped - top) > 1e-3


def test_batchnorm_after_a_conv_is_folded_into_it():
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    bn = nn.BatchNorm2d(3).double()
    bn.running_var.copy_(torch.tensor([0.5, 2.0, 4.0]))
    bn.running_mean.copy_(torch.tensor([0.3, -1.0, 2.0]))
    bn.weight.data.copy_(torch.tensor([1.5, -0.5, 2.0]))
    net = nn.Sequential(conv, bn, nn.ReLU()).eval()
    shape = (2, 4, 4)
    layers = weight_layers(net, torch.randn(2, *shape, dtype=torch.float64))
    assert [lay.kind for lay in layers] == ["conv"]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)

    def linear_part(v):  # BN(conv(v)) minus its value at v = 0
        return scale.reshape(1, -1, 1, 1) * nn.functional.conv2d(v, conv.weight, None, 1, 1)

    top = np.linalg.svd(_explicit_matrix(linear_part, shape), compute_uv=False)[0]
    assert spectral(layers[0], iters=2000, tol=1e-12) == pytest.approx(top, rel=1e-6)


def test_batchnorm_before_a_layer_is_a_diagonal_layer():
    bn = nn.BatchNorm1d(4).double()
    bn.running_var.copy_(torch.tensor([0.25, 1.0, 4.0, 9.0]))
    net = nn.Sequential(bn, nn.ReLU(), nn.Linear(4, 2).double()).eval()
    layers = weight_layers(net, torch.randn(2, 4, dtype=torch.float64))
    assert [lay.kind for lay in layers] == ["diag", "linear"]
    assert spectral(layers[0]) == pytest.approx(1 / math.sqrt(0.25 + bn.eps))


def test_path_norm_matches_brute_force_enumeration_of_paths():
    net = _mlp([3, 4, 4, 2], seed=3)
    (w1, b1), (w2, b2), (w3, b3) = [(m.weight.detach(), m.bias.detach()) for m in net[1::2]]
    total = 0.0
    for o, k, j, i in itertools.product(range(2), range(4), range(4), range(3)):
        total += float(w1[j, i] ** 2 * w2[k, j] ** 2 * w3[o, k] ** 2)  # input -> output
    for o, k, j in itertools.product(range(2), range(4), range(4)):
        total += float(b1[j] ** 2 * w2[k, j] ** 2 * w3[o, k] ** 2)  # bias of layer 1
    for o, k in itertools.product(range(2), range(4)):
        total += float(b2[k] ** 2 * w3[o, k] ** 2)
    total += float((b3**2).sum())
    assert math.exp(N.log_path_norm(net, (3,))) == pytest.approx(total, rel=1e-10)


def _tiny_problem(seed=0):
    torch.manual_seed(seed)
    net = _mlp([4, 3, 3], seed=seed)
    x = torch.randn(20, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (20,))
    return net, x, y


def _explicit_hessian(net, x, y):
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    def loss(flat):
        params, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            params[n] = flat[i : i + math.prod(s)].reshape(s)
            i += math.prod(s)
        out = torch.func.functional_call(net, params, (x,))
        return nn.functional.cross_entropy(out, y)

    return torch.autograd.functional.hessian(loss, flat0).numpy()


def test_hessian_top_eigenvalue_and_trace_match_the_explicit_hessian():
    net, x, y = _tiny_problem()
    h = _explicit_hessian(net, x, y)
    eigs = np.linalg.eigvalsh(h)
    top = eigs[np.argmax(np.abs(eigs))]
    g = torch.Generator().manual_seed(0)
    got = FL.hessian_top_eigenvalue(net, x, y, generator=g, iters=300)
    assert got == pytest.approx(top, rel=1e-4)
    trace = FL.hessian_trace(net, x, y, generator=g, probes=300)
    # Hutchinson's variance is 2 * sum_{i != j} H_ij^2 per probe
    sd = math.sqrt(2 * ((h**2).sum() - (np.diag(h) ** 2).sum()) / 300)
    assert abs(trace - np.trace(h)) < 4 * sd + 1e-12


def test_logit_margins_match_a_plain_loop():
    net, x, y = _tiny_problem(1)
    got = N.logit_margins(net, x, y)
    with torch.no_grad():
        z = net(x)
    for i in range(len(y)):
        others = [float(z[i, j]) for j in range(3) if j != int(y[i])]
        assert float(got[i]) == pytest.approx(float(z[i, y[i]]) - max(others))


def _fitted_problem(seed=2):
    net, x, _ = _tiny_problem(seed)
    y = x[:, :3].argmax(1)  # learnable labels
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    assert FL.error_rate(net, x, y) <= 0.1
    return net, x, y


def test_pacbayes_sigma_is_the_edge_of_the_allowed_deviation():
    net, x, y = _fitted_problem()
    before = [p.detach().clone() for p in net.parameters()]
    sigma = FL.pacbayes_sigma(net, x, y, generator=torch.Generator().manual_seed(5), draws=4)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    # redraw the same noise and check the definition at sigma and just above it
    g = torch.Generator().manual_seed(5)
    z = [[torch.randn(p.shape, generator=g).double() for p in before] for _ in range(4)]
    base = FL.error_rate(net, x, y)

    def deviation(s):
        errs = []
        for zs in z:
            with torch.no_grad():
                for p, w, zi in zip(net.parameters(), before, zs, strict=True):
                    p.copy_(w + s * zi)
            errs.append(FL.error_rate(net, x, y))
        with torch.no_grad():
            for p, w in zip(net.parameters(), before, strict=True):
                p.copy_(w)
        return sum(errs) / len(errs) - base

    assert deviation(sigma) <= FL.PACBAYES_DEVIATION
    assert deviation(sigma * 1.01) > FL.PACBAYES_DEVIATION


def test_sharpness_is_nonnegative_and_restores_the_weights():
    net, x, y = _tiny_problem(3)
    before = [p.detach().clone() for p in net.parameters()]
    s = FL.sharpness(net, x, y, eps=1e-2)
    assert s > 0
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_gradient_noise_is_zero_for_full_batches_and_positive_otherwise():
    net, x, y = _tiny_problem(4)
    g = torch.Generator().manual_seed(0)
    assert FL.gradient_noise(net, x, y, 20, generator=g) == pytest.approx(0.0, abs=1e-20)
    assert FL.gradient_noise(net, x, y, 4, generator=g) > 0


@pytest.mark.parametrize(
    "name", ["mlp-1x16", "alexnet-small", "inception-small", "inception-small-nobn", "resnet18-k2"]
)
def test_every_model_family_gets_finite_norm_measures(name):
    net = models.build(name, (1, 8, 8), 10, seed=0).eval()
    init = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01)
    x = torch.randn(4, 1, 8, 8)
    vals = N.size_and_norms(net, init, x)
    assert vals["params"] == models.count_params(net)
    assert all(math.isfinite(v) for v in vals.values())
    assert vals["dist_init"] == pytest.approx(0.01**2 * vals["params"], rel=1e-4)
    kinds = {lay.kind for lay in weight_layers(net, x[:2])}
    # inception's BatchNorm follows each conv (folded); the pre-activation ResNet's does not
    assert ("diag" in kinds) == name.startswith("resnet")


@pytest.mark.parametrize("seed", range(5))
def test_kendall_tau_matches_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 5, 30).astype(float)
    b = a + rng.integers(0, 4, 30)
    assert kendall_tau(a, b) == pytest.approx(scipy.stats.kendalltau(a, b).statistic, abs=1e-12)


def test_granulated_tau_on_a_hand_made_grid():
    # 2 x 3 grid; gap = A + B; measure = B - A. Along B (A fixed): tau = +1 in both groups;
    # along A (B fixed): two runs each, opposite order, tau = -1. Psi = (1 + -1) / 2 = 0.
    hp = [{"A": a, "B": b} for a in (0, 1) for b in (0, 1, 2)]
    gaps = [h["A"] + h["B"] + 0.1 * h["A"] for h in hp]
    vals = [h["B"] - h["A"] for h in hp]
    assert granulated_tau(vals, gaps, hp) == pytest.approx(0.0)
    assert granulated_tau(gaps, gaps, hp) == pytest.approx(1.0)
    # a measure that only follows A: psi_A = 1, psi_B = NaN (constant measure) -> Psi = 1
    assert granulated_tau([h["A"] for h in hp], gaps, hp) == pytest.approx(1.0)


def test_conditional_mi_on_a_hand_made_table():
    # one axis with one level: the plain normalized MI over the 6 ordered pairs of 3 runs.
    # gaps 0.1 < 0.2 < 0.3, measure 1, 3, 2: pairs give (V_g, V_mu) counts n00 = n11 = 2,
    # n01 = n10 = 1: MI = 2/3 log2(4/3) + 1/3 log2(2/3) = 0.0817 bits, H(V_g) = 1 bit.
    hp = [{"a": 0}] * 3
    expect = 2 / 3 * math.log2(4 / 3) + 1 / 3 * math.log2(2 / 3)
    assert conditional_mi([1, 3, 2], [0.1, 0.2, 0.3], hp) == pytest.approx(expect)
    assert conditional_mi([1, 2, 3], [0.1, 0.2, 0.3], hp) == pytest.approx(1.0)
    assert conditional_mi([3, 2, 1], [0.1, 0.2, 0.3], hp) == pytest.approx(1.0)


def test_conditional_mi_takes_the_least_informative_pair_of_axes():
    # 2 x 2 x 2 grid, 2 seeds per cell; gap = 4a + 2b + c + noise; measure = gap except that
    # within each cell it orders the seeds backwards. Conditioning on any pair leaves the
    # third axis to explain; the pair (a, b) leaves c, the least; both must stay in (0, 1).
    rng = np.random.default_rng(0)
    hp, gaps, vals = [], [], []
    for a, b, c in itertools.product((0, 1), repeat=3):
        for s in range(2):
            hp.append({"a": a, "b": b, "c": c})
            gaps.append(4 * a + 2 * b + c + 0.1 * s + 0.01 * rng.random())
            vals.append(4 * a + 2 * b + c - 0.1 * s)
    from rethink.measures._score import _cmi_given

    pairs = [_cmi_given(np.array(vals), np.array(gaps), hp, S) for S in
             (("a", "b"), ("a", "c"), ("b", "c"))]  # fmt: skip
    got = conditional_mi(vals, gaps, hp)
    assert got == pytest.approx(min(pairs))
    assert 0 < got < 1


def test_hyperparameter_axes_merge_label_noise_into_corruption_prob():
    specs = [
        {"corruption": {"kind": "none", "prob": 0.0}, "train": {"lr": 0.1}, "seed": 0},
        {"corruption": {"kind": "partial-labels", "prob": 0.5}, "train": {"lr": 0.1}, "seed": 1},
        {"corruption": {"kind": "random-labels", "prob": 1.0}, "train": {"lr": 0.01}, "seed": 0},
    ]
    axes = hyperparameter_axes(specs)
    assert axes == [
        {"corruption.prob": 0.0, "train.lr": 0.1},
        {"corruption.prob": 0.5, "train.lr": 0.1},
        {"corruption.prob": 1.0, "train.lr": 0.01},
    ]


def test_plain_lrn_equals_the_models_lrn_and_differentiates_twice():
    from rethink.measures._compute import _plain_lrn

    net = models.build("alexnet-small", (1, 8, 8), 10, seed=0).eval()
    x = torch.randn(6, 1, 8, 8)
    y = torch.randint(0, 10, (6,))
    with torch.no_grad():
        before = net(x)
    _plain_lrn(net)
    assert not any(isinstance(m, models.LocalResponseNorm) for m in net.modules())
    with torch.no_grad():
        assert torch.allclose(net(x), before, atol=1e-6)
    g = torch.Generator().manual_seed(0)
    assert math.isfinite(FL.hessian_top_eigenvalue(net, x, y, generator=g, iters=2))
    # the path-norm pass skips LRN in either form
    assert math.isfinite(N.log_path_norm(net, (1, 8, 8)))
