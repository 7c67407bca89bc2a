"""Critical sample ratio on a linear model, where the L-inf distance of x to the decision
boundary w.x + c = 0 is known in closed form: |w.x + c| / ||w||_1."""

from __future__ import annotations

import torch
from torch import nn

from rethink.dynamics import (
    critical_sample_ratio,
    critical_samples,
    csr_epochs,
    csr_metrics,
    csr_sample,
)


def linear_model(d: int, seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(d, 2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, d, generator=g))
        model.bias.copy_(torch.randn(2, generator=g))
    w = model.weight[1] - model.weight[0]
    c = model.bias[1] - model.bias[0]
    return model, w.detach(), c.detach()


def test_linear_model_critical_iff_boundary_within_radius():
    d, radius = 8, 0.3
    model, w, c = linear_model(d, 0)
    x = torch.randn(2000, d, generator=torch.Generator().manual_seed(1))
    dist = (x @ w + c).abs() / w.abs().sum()  # (N,) L-inf distance to the boundary
    clear = (dist - radius).abs() > 1e-4  # leave out points on the sphere itself
    want = dist < radius
    assert 0.1 < want.float().mean() < 0.9  # the test says something
    for step_size in (None, radius):  # two LASS steps reach the right corner; one if step >= r
        got = critical_samples(
            model, x, radius=radius, steps=3, step_size=step_size, noise=0.0,
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        assert torch.equal(got[clear], want[clear])
    csr = critical_sample_ratio(
        model, x[clear], radius=radius, steps=3, noise=0.0, generator=torch.Generator()
    )
    assert abs(csr - want[clear].float().mean().item()) < 1e-6


def test_the_search_never_leaves_the_ball_and_noise_is_seeded():
    d, radius = 8, 0.3
    model, w, c = linear_model(d, 3)
    model.train()
    x = torch.randn(500, d, generator=torch.Generator().manual_seed(4))
    dist = (x @ w + c).abs() / w.abs().sum()

    def run():
        return critical_samples(
            model, x, radius=radius, steps=10, generator=torch.Generator().manual_seed(7)
        )

    got = run()
    assert not got[dist > radius + 1e-5].any()  # a point whose ball is clean is never flagged
    assert got[dist < radius / 2].all()
    assert torch.equal(got, run())
    assert model.training and model.weight.grad is None  # mode restored, no parameter grads


def test_csr_epochs_and_sample_are_fixed():
    assert csr_epochs(100) == [0, 1, 2, 4, 8, 16, 32, 64, 100]
    assert csr_epochs(8) == [0, 1, 2, 4, 8]
    tr, te = csr_sample(5000, 1000)
    assert len(tr) == len(te) == 200 and len(set(tr.tolist())) == 200
    assert int(tr.max()) < 5000 and int(te.max()) < 1000
    tr2, te2 = csr_sample(5000, 1000)
    assert torch.equal(tr, tr2) and torch.equal(te, te2)
    assert len(csr_sample(50, 1000)[0]) == 50


def test_csr_metrics_on_both_splits():
    model, _, _ = linear_model(8, 0)
    g = torch.Generator().manual_seed(2)
    x_tr, x_te = torch.randn(300, 8, generator=g), torch.randn(100, 8, generator=g)
    sample = csr_sample(300, 100, size=50)
    m = csr_metrics(model, x_tr, x_te, sample=sample, radius=0.3, epoch=4)
    assert set(m) == {"csr_train", "csr_test"} and all(0.0 <= v <= 1.0 for v in m.values())
    assert m == csr_metrics(model, x_tr, x_te, sample=sample, radius=0.3, epoch=4)
