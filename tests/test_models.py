"""The model zoo: every registered model on every dataset shape, the paper's exact parameter
counts, errors for bad names and inputs, LRN against independent references, `rethink models`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from _cli import run_cli

from rethink import models
from rethink.errors import RethinkError

# Every concrete model `describe` lists, plus members of the pattern families.
MODELS = [r["name"] for r in models.describe()] + ["mlp-2x64", "resnet18-k1"]
# (input shape, classes) of every dataset rethink has: digits, (Fashion-)MNIST, MNIST-1D,
# the paper's CIFAR crop and CIFAR-100 at full size.
SHAPES = [((1, 8, 8), 10), ((1, 28, 28), 10), ((1, 1, 40), 10), ((3, 28, 28), 10),
          ((3, 32, 32), 100)]  # fmt: skip

PAPER_COUNTS = {
    "inception-small": 1_649_402,
    "inception-small-nobn": 1_649_402,
    "alexnet-small": 1_387_786,
    "mlp-3x512": 1_735_178,
    "mlp-1x512": 1_209_866,
}


@pytest.mark.parametrize("name,count", PAPER_COUNTS.items())
def test_paper_parameter_counts_are_exact(name, count):
    assert models.count_params(models.build(name, (3, 28, 28), 10)) == count


def test_pattern_counts_follow_their_formula():
    d, w, n_in, k = 2, 1024, 1 * 28 * 28, 10
    expected = n_in * w + w + (d - 1) * (w * w + w) + w * k + k
    assert models.count_params(models.build(f"mlp-{d}x{w}", (1, 28, 28), k)) == expected
    # The widely quoted count of the CIFAR pre-activation ResNet-18 (kuangliu/pytorch-cifar).
    assert models.count_params(models.build("resnet18", (3, 32, 32), 10)) == 11_171_146
    assert models.count_params(models.build("resnet18-k64", (3, 32, 32), 10)) == 11_171_146
    # Counted by hand (docs/models.md): 2724 k^2 conv weights, 9 C k stem, 2 * 53 k BatchNorm
    # scale/shift, 8 k K + K linear.
    for k, c, classes in ((1, 3, 10), (5, 1, 100), (12, 3, 10)):
        expected = 2724 * k * k + 9 * c * k + 106 * k + 8 * k * classes + classes
        net = models.build(f"resnet18-k{k}", (c, 8, 8), classes)
        assert models.count_params(net) == expected


@pytest.mark.parametrize("shape,classes", SHAPES, ids=lambda v: "x".join(map(str, v))
                         if isinstance(v, tuple) else str(v))  # fmt: skip
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_on_every_dataset_shape(name, shape, classes):
    gen = torch.Generator().manual_seed(0)
    net = models.build(name, shape, classes, seed=1)
    x = torch.randn(4, *shape, generator=gen)
    y = torch.randint(0, classes, (4,), generator=gen)
    logits = net(x)
    assert logits.shape == (4, classes)
    loss = torch.nn.functional.cross_entropy(logits, y)
    assert torch.isfinite(loss)
    loss.backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    # Eval mode (BatchNorm running statistics) works on a single example too.
    net.eval()
    with torch.no_grad():
        assert torch.isfinite(net(x[:1])).all()


@pytest.mark.parametrize("name", ["mlp-3x512", "alexnet-small", "inception-small", "resnet18-k2"])
def test_dropout_is_absent_at_zero_and_active_when_asked(name):
    plain = models.build(name, (3, 28, 28), 10, seed=0)
    dropped = models.build(name, (3, 28, 28), 10, dropout=0.5, seed=0)
    assert not any(isinstance(m, torch.nn.Dropout) for m in plain.modules())
    assert any(isinstance(m, torch.nn.Dropout) for m in dropped.modules())
    # Same parameters under the same names: a checkpoint moves between the two.
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(8, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    plain.eval(), dropped.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(x), dropped(x))
        dropped.train()
        assert not torch.allclose(plain(x), dropped(x))


def test_seed_is_reproducible_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a = models.build("alexnet-small", seed=3).state_dict()
    b = models.build("alexnet-small", seed=3).state_dict()
    c = models.build("alexnet-small", seed=4).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


def test_default_lr_is_the_papers():
    assert models.default_lr("inception-small") == 0.1
    assert models.default_lr("inception-small-nobn") == 0.1
    for name in ("alexnet-small", "mlp-1x512", "mlp-3x512", "mlp-7x33", "resnet18-k5"):
        assert models.default_lr(name) == 0.01


def test_names_lists_models_and_patterns():
    got = models.names()
    for name in ("mlp-<D>x<W>", "alexnet-small", "inception-small", "inception-small-nobn",
                 "resnet18", "resnet18-k<K>"):  # fmt: skip
        assert name in got


@pytest.mark.parametrize(
    "call",
    [
        lambda: models.build("vgg16"),
        lambda: models.build("mlp-3x"),
        lambda: models.default_lr("alexnet"),
        lambda: models.build("mlp-0x512"),
        lambda: models.build("mlp-1x0"),
        lambda: models.build("resnet18-k0"),
        lambda: models.build("alexnet-small", (3, 0, 28)),
        lambda: models.build("alexnet-small", (28, 28)),
        lambda: models.build("alexnet-small", (3, 28.5, 28)),
        lambda: models.build("alexnet-small", "3x28x28"),
        lambda: models.build("alexnet-small", num_classes=1),
        lambda: models.build("alexnet-small", num_classes=10.0),
        lambda: models.build("alexnet-small", dropout=1.0),
        lambda: models.build("alexnet-small", dropout=-0.1),
    ],
)
def test_bad_input_is_one_sentence(call):
    with pytest.raises(RethinkError) as info:
        call()
    msg = str(info.value)
    assert msg.endswith(".") and "\n" not in msg


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(RethinkError, match="unknown model 'vgg16'") as info:
        models.build("vgg16")
    for name in models.names():
        assert name in str(info.value)


def _tf_lrn(x, depth_radius, bias, alpha, beta):
    # tf.nn.local_response_normalization, written from its documented formula, NHWC loops.
    x = x.transpose(0, 2, 3, 1).astype(np.float64)
    out = np.empty_like(x)
    c = x.shape[-1]
    for d in range(c):
        lo, hi = max(0, d - depth_radius), min(c, d + depth_radius + 1)
        sqr_sum = (x[..., lo:hi] ** 2).sum(-1)
        out[..., d] = x[..., d] / (bias + alpha * sqr_sum) ** beta
    return out.transpose(0, 3, 1, 2)


@pytest.mark.parametrize("channels,radius", [(64, 4), (5, 4), (12, 2)])
def test_lrn_matches_tensorflow_formula_and_torch(channels, radius):
    gen = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(2, channels, 5, 4, generator=gen, dtype=torch.float64)
    lrn = models.LocalResponseNorm(channels, radius, bias=1.0, alpha=0.001 / 9, beta=0.75)
    lrn = lrn.double()
    ref = _tf_lrn(x.numpy(), radius, 1.0, 0.001 / 9, 0.75)
    np.testing.assert_allclose(lrn(x).numpy(), ref, rtol=1e-12)
    size = 2 * radius + 1
    theirs = torch.nn.LocalResponseNorm(size, alpha=0.001 / 9 * size, beta=0.75, k=1.0)
    torch.testing.assert_close(lrn(x), theirs(x))
    # Gradients agree with torch's (independently implemented) LRN as well.
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    w = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    (lrn(xa) * w).sum().backward()
    (theirs(xb) * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)


def test_lrn_band_is_not_in_state_dict():
    net = models.build("alexnet-small")
    assert not any("band" in k for k in net.state_dict())


def test_cli_models_json(capsys):
    code, out, _ = run_cli(["models", "--json"], capsys)
    assert code == 0
    got = {m["name"]: m for m in json.loads(out.strip().splitlines()[-1])["models"]}
    for name, count in PAPER_COUNTS.items():
        assert got[name]["params"] == count
    assert got["inception-small"]["default_lr"] == 0.1
    assert got["alexnet-small"]["default_lr"] == 0.01
    code, out, _ = run_cli(["models", "--input-shape", "1,1,40", "--classes", "100", "--json"],
                        capsys)  # fmt: skip
    got = {m["name"]: m for m in json.loads(out.strip().splitlines()[-1])["models"]}
    assert got["mlp-1x512"]["params"] == 40 * 512 + 512 + 512 * 100 + 100


def test_cli_models_table_and_bad_input(capsys):
    code, out, _ = run_cli(["models"], capsys)
    assert code == 0 and "1,387,786" in out and "inception-small-nobn" in out
    for bad in (["--input-shape", "3,28"], ["--input-shape", "3,a,28"], ["--classes", "1"]):
        code, _, err = run_cli(["models", *bad], capsys)
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["alexnet-small", "inception-small", "resnet18-k2", "mlp-1x512"])
def test_optimize_for_training_keeps_parameters_and_results(name):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 28, 28, generator=gen)
    y = torch.randint(0, 10, (6,), generator=gen)
    plain = models.build(name, seed=0)
    fast = models.build(name, seed=0)
    params, keys = list(fast.parameters()), list(fast.state_dict())
    assert models.optimize_for_training(fast, "cpu", compile=False) is fast
    assert all(a is b for a, b in zip(params, fast.parameters(), strict=True))
    assert list(fast.state_dict()) == keys
    for net in (plain, fast):
        torch.nn.functional.cross_entropy(net(x), y).backward()
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)
    for (pname, a), b in zip(plain.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5, msg=pname)


def test_cpu_channels_last_only_where_the_model_asks():
    # alexnet-small opts in (measured faster, clean backward); resnet18-k2's CPU backward
    # segfaulted in channels_last, so the CPU default leaves every other model alone
    for name, want in (("alexnet-small", True), ("inception-small", False), ("resnet18-k2", False)):
        net = models.optimize_for_training(models.build(name, seed=0), "cpu", compile=False)
        conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) is want, name


def test_compile_without_a_compiler_is_one_sentence(monkeypatch):
    from rethink.models import _optimize

    monkeypatch.setattr(_optimize, "compiler_available", lambda device="cpu": False)
    with pytest.raises(RethinkError, match="compiler"):
        models.optimize_for_training(models.build("mlp-1x512"), "cpu", compile=True)
    # Automatic choice: no compiling without a compiler, and never on a CPU.
    net = models.optimize_for_training(models.build("mlp-1x512"), "cpu")
    assert not hasattr(net, "_compiled_call_impl") or net._compiled_call_impl is None


@pytest.mark.slow
def test_compiled_alexnet_trains_like_the_eager_one():
    # Minutes of CPU: torch.compile generates and builds C++ for forward and backward.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 28, 28, generator=gen)
    y = torch.randint(0, 10, (16,), generator=gen)
    losses = []
    for compile_ in (False, True):
        net = models.optimize_for_training(models.build("alexnet-small", seed=0), compile=compile_)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        run = []
        for _ in range(3):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            run.append(loss.item())
        losses.append(run)
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)


def _bench_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "convnets.py"
    spec = importlib.util.spec_from_file_location("_bench_convnets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["alexnet-small", "inception-small"])
def test_models_equal_the_plain_reference_in_bench(name):
    # bench/convnets.py writes the paper's convnets plainly (torch's own LRN, ReLU before
    # pooling, NCHW): with the same weights they must compute what rethink's models compute.
    naive = _bench_module().NAIVE[name]()
    ours = models.build(name, seed=0)
    naive.load_state_dict(ours.state_dict())  # strict: the same parameter names and shapes
    models.optimize_for_training(ours, "cpu", compile=False)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 28, 28, generator=gen)
    y = torch.randint(0, 10, (4,), generator=gen)
    losses = []
    for net in (naive, ours):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for (pname, a), b in zip(naive.named_parameters(), ours.parameters(), strict=True):
        if pname.endswith("conv.bias"):  # exactly 0 before BatchNorm: only rounding is left
            continue
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5, msg=pname)


def test_inception_nobn_keeps_the_signal_scale():
    # torch's default conv init shrinks the second moment ~6x per conv module; without BN
    # the 11 modules leave features near zero and SGD stalls at ln(10). He init keeps it O(1).
    torch.manual_seed(0)
    x = torch.randn(16, 3, 28, 28)
    model = models.build("inception-small-nobn", (3, 28, 28), 10, seed=0)
    with torch.no_grad():
        features = model.body(model.stem(x))
    assert 0.1 < features.pow(2).mean().item() < 10.0


_FAULTS = """
import resource, torch
from rethink import models
net = models.optimize_for_training(models.build("mlp-1x64", seed=0), "cpu", compile=False)
from rethink.models._optimize import keep_freed_memory
for _ in range(5):  # the heap grows once (first touch of its pages)
    torch.ones(16 << 20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    torch.ones(16 << 20)  # 64 MiB, freed at once: above glibc's default mmap threshold
print(keep_freed_memory(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_cpu_training_keeps_freed_memory_instead_of_faulting_it_in_again():
    got = {}
    for mode in ("", "system"):
        env = {**os.environ, "RETHINK_MALLOC": mode}
        out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True,
                             env=env, check=True).stdout.split()  # fmt: skip
        got[mode] = (out[0] == "True", int(out[1]))
    tuned, faults = got[""]
    untouched, faults_system = got["system"]
    assert tuned and not untouched
    assert faults_system > 20 * 10_000  # every 64 MiB block page-faulted in again
    assert faults < faults_system / 5  # reused: most pages are not faulted in again
