"""Training-step throughput of the paper's convnets on CPU: a naive eager loop vs rethink's.

    python bench/convnets.py [--steps N] [--models alexnet-small,inception-small]
                             [--compile off|on] [--threads 2] [--json]

For each model: the same initial weights go into (a) a plain reference written here from the
paper's description (NCHW memory order, eager, torch.nn.LocalResponseNorm, conv -> ReLU ->
pool, relu(BatchNorm2d(x))) and (b) rethink's model after
`rethink.models.optimize_for_training`. Both train with SGD (momentum 0.9, the paper's lr,
batch 128, random 3x28x28 inputs, `--threads` threads), their steps interleaved one by one
so that load from other processes hits both alike. The first steps' losses must agree
within float tolerance (the script fails otherwise). Reported: samples/s from the median
and from the best step time of each; the speed-up as the median ratio of adjacent step times
(`speedup`), and as ratios of the medians and of the best steps; the warm-up (first two
steps, which include compiling with --compile on). With --json the last line is one JSON
object; exit status 1 if the losses disagree.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from rethink import models

BATCH = 128
SHAPE = (3, 28, 28)
CLASSES = 10
CHECKED_STEPS = 3  # losses of this many first steps must agree


class NaiveAlexNet(nn.Module):
    """The paper's small AlexNet, written plainly; parameter names as rethink's."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 5, padding=2)
        self.conv2 = nn.Conv2d(64, 64, 5, padding=2)
        self.pool = nn.MaxPool2d(3, 2, padding=1)
        # TF depth_radius 4, alpha 0.001/9 -> torch size 9, alpha 0.001 (torch divides by size)
        self.lrn = nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0)
        self.fc1, self.fc2, self.out = (
            nn.Linear(64 * 7 * 7, 384),
            nn.Linear(384, 192),
            nn.Linear(192, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lrn(self.pool(F.relu(self.conv1(x))))
        x = self.lrn(self.pool(F.relu(self.conv2(x))))
        x = F.relu(self.fc2(F.relu(self.fc1(x.flatten(1)))))
        return self.out(x)


class _Conv(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, padding=k // 2)
        self.bn = nn.BatchNorm2d(c_out, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class _Inc(nn.Module):
    def __init__(self, c_in: int, c1: int, c3: int) -> None:
        super().__init__()
        self.b1, self.b3 = _Conv(c_in, c1, 1), _Conv(c_in, c3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x)], 1)


class _Down(nn.Module):
    def __init__(self, c_in: int, c3: int) -> None:
        super().__init__()
        self.conv, self.pool = _Conv(c_in, c3, 3, 2), nn.MaxPool2d(3, 2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.pool(x)], 1)


class NaiveInception(nn.Module):
    """The paper's small Inception, written plainly; parameter names as rethink's."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _Conv(3, 96, 3)
        self.body = nn.Sequential(
            _Inc(96, 32, 32), _Inc(64, 32, 48), _Down(80, 80),
            _Inc(160, 112, 48), _Inc(160, 96, 64), _Inc(160, 80, 80), _Inc(160, 48, 96),
            _Down(144, 96), _Inc(240, 176, 160), _Inc(336, 176, 160),
        )  # fmt: skip
        self.out = nn.Linear(336, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(self.stem(x)).mean((2, 3)))


NAIVE = {"alexnet-small": NaiveAlexNet, "inception-small": NaiveInception}


def _bench_model(name: str, steps: int, compile_: bool) -> dict[str, object]:
    fast = models.build(name, SHAPE, CLASSES, seed=0)
    naive = NAIVE[name]()
    naive.load_state_dict(fast.state_dict())  # same initial weights (strict: same names)
    models.optimize_for_training(fast, "cpu", compile=compile_)
    lr = models.default_lr(name)
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(4, BATCH, *SHAPE, generator=gen)  # 4 batches, cycled
    ys = torch.randint(0, CLASSES, (4, BATCH), generator=gen)

    def make_step(net: nn.Module):
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)

        def step(i: int) -> float:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(xs[i % 4]), ys[i % 4])
            loss.backward()
            opt.step()
            return loss.item()

        return step

    runs = {"naive": make_step(naive), "rethink": make_step(fast)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    losses: dict[str, list[float]] = {k: [] for k in runs}
    warmup_s = {}
    for kind, step in runs.items():  # warm-up: allocator, oneDNN primitives, compiling
        t0 = time.perf_counter()
        losses[kind] += [step(0), step(1)]
        warmup_s[kind] = time.perf_counter() - t0
    for i in range(2, 2 + steps):
        for kind, step in runs.items():
            t0 = time.perf_counter()
            losses[kind].append(step(i))
            times[kind].append(time.perf_counter() - t0)
    pairs = zip(losses["naive"][:CHECKED_STEPS], losses["rethink"][:CHECKED_STEPS], strict=True)
    diff = max(abs(a - b) for a, b in pairs)
    # Adjacent steps see about the same load from other processes: the median of their time
    # ratios is the steadiest speed-up estimate on a shared machine.
    paired = statistics.median(a / b for a, b in zip(times["naive"], times["rethink"], strict=True))
    med = {k: BATCH / statistics.median(v) for k, v in times.items()}
    best = {k: BATCH / min(v) for k, v in times.items()}
    return {
        "model": name,
        "naive_samples_per_s": round(med["naive"], 1),
        "rethink_samples_per_s": round(med["rethink"], 1),
        "speedup": round(paired, 3),
        "speedup_of_medians": round(med["rethink"] / med["naive"], 3),
        "naive_best_samples_per_s": round(best["naive"], 1),
        "rethink_best_samples_per_s": round(best["rethink"], 1),
        "speedup_best": round(best["rethink"] / best["naive"], 3),
        "warmup_s": {k: round(v, 2) for k, v in warmup_s.items()},
        "max_loss_diff_first_steps": diff,
        "losses_agree": diff <= 1e-3 * max(1.0, abs(losses["naive"][0])),
        "final_loss": {k: round(v[-1], 5) for k, v in losses.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="timed steps per model (default 10)")
    p.add_argument("--models", default="alexnet-small,inception-small")
    p.add_argument("--compile", choices=["off", "on"], default="off",
                   help="torch.compile the rethink model (default off)")  # fmt: skip
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAIVE]
    if args.steps < 1 or unknown:
        print(f"error: --steps must be >= 1 and --models among {', '.join(NAIVE)}.",
              file=sys.stderr)  # fmt: skip
        return 2
    torch.set_num_threads(args.threads)
    results = []
    for name in names:
        r = _bench_model(name, args.steps, args.compile == "on")
        results.append(r)
        print(
            f"{name:16s} naive {r['naive_samples_per_s']:7.1f}/s  rethink "
            f"{r['rethink_samples_per_s']:7.1f}/s (median steps)  speed-up x{r['speedup']:.2f} "
            f"(paired steps; of medians x{r['speedup_of_medians']:.2f}, of best steps "
            f"x{r['speedup_best']:.2f})  warm-up {r['warmup_s']}  loss diff "
            f"{r['max_loss_diff_first_steps']:.1e}",
            flush=True,
        )
    ok = all(r["losses_agree"] for r in results)
    if args.json:
        summary = {
            "bench": "convnets",
            "batch": BATCH,
            "input_shape": list(SHAPE),
            "threads": args.threads,
            "steps": args.steps,
            "compile": args.compile == "on",
            "ok": ok,
            "results": results,
        }
        print(json.dumps(summary))
    if not ok:
        print("error: the rethink model's losses differ from the naive reference's.",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
