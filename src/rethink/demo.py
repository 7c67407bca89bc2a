"""The demo: the paper's Fig. 1a in miniature, on CPU, in about a minute.

Five runs on mnist-5k (4,000 training and 1,000 test images of MNIST, packaged offline):
true labels, random labels, shuffled pixels, random pixels and Gaussian inputs, each trained
with `--until-fit` by the same model and schedule. It writes a store, a learning-curve figure
(training loss and accuracy vs steps) and returns one result per setting.

    >>> from rethink.demo import run_demo
    >>> out = run_demo("demo")                 # doctest: +SKIP
    >>> [r["epochs_to_fit"] for r in out["runs"]]  # doctest: +SKIP

The model and schedule were calibrated on the real data (docs/training.md): an MLP 1x512 with
SGD (momentum 0.9) at a constant lr 0.1 fits all five settings to 100% training accuracy;
the paper's x0.95 decay would stall on random labels.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rethink.spec import RunSpec

SETTINGS = (  # (corruption kind, label in tables and figures), in the paper's order
    ("none", "true labels"),
    ("random-labels", "random labels"),
    ("shuffled-pixels", "shuffled pixels"),
    ("random-pixels", "random pixels"),
    ("gaussian", "Gaussian"),
)
DEMO_SPEC = {
    "dataset": "mnist-5k",
    "model.name": "mlp-1x512",
    "lr": 0.1,  # constant: a decaying lr leaves random labels unfit (docs/training.md)
    "schedule": "constant",
    "until_fit": True,
    "max_epochs": 300,  # a safety net; random labels fit in about 90 epochs
}


def demo_specs(seed: int = 0, overrides: dict[str, Any] | None = None) -> list[tuple[str, RunSpec]]:
    """(label, spec) for each of the five settings; `overrides` change the shared spec."""
    base = RunSpec.from_dict({**DEMO_SPEC, "seed": seed}).override(overrides or {})
    return [(label, base.override({"labels": kind})) for kind, label in SETTINGS]


def run_demo(
    out_dir: str | os.PathLike = "demo",
    *,
    device: str = "auto",
    data_dir=None,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    announce: Callable[[str, RunSpec], None] | None = None,
    progress=None,
    on_epoch=None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run (or resume, or reuse) the five runs into out_dir/runs.db, draw out_dir/fig1a.png.

    Returns {"store", "figure", "runs": [{"setting", "run_id", **result}, ...]}."""
    from rethink import runner
    from rethink.store import Store

    out = Path(out_dir)
    specs = demo_specs(seed, overrides)
    for _, spec in specs:  # every check (data, model) before the store is touched
        spec.normalized()
    runner.setup(specs[0][1], data_dir=data_dir, device=device)
    store_path = out / "runs.db"
    rows = []
    for label, spec in specs:
        if announce is not None:
            announce(label, spec)
        result = runner.run(
            spec,
            store=store_path,
            data_dir=data_dir,
            device=device,
            sweep="demo",
            progress=progress,
            on_epoch=on_epoch,
            threads=threads,
        )
        rows.append({"setting": label, "run_id": spec.run_id(), **result})
    with Store(store_path, readonly=True) as st:
        curves = {label: st.epochs(spec.run_id()) for label, spec in specs}
    figure = out / "fig1a.png"
    s = specs[0][1]
    plot_curves(curves, figure, f"{s.data.dataset}, {s.model.name}")
    return {"store": str(store_path), "figure": str(figure), "runs": rows}


def plot_curves(curves: dict[str, list[dict[str, Any]]], path: Path, title: str = "") -> None:
    """Training loss and training accuracy vs steps, one line per setting, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for label, epochs in curves.items():
        steps = [e["step"] for e in epochs]
        ax_loss.plot(steps, [e["train_loss"] for e in epochs], label=label)
        ax_acc.plot(steps, [100 * e["train_acc"] for e in epochs], label=label)
    ax_loss.set(xlabel="steps (batches of 128)", ylabel="training loss", yscale="log")
    ax_acc.set(xlabel="steps (batches of 128)", ylabel="training accuracy (%)", ylim=(0, 101))
    ax_loss.set_title(f"{title}: training loss")
    ax_acc.set_title("training accuracy (full pass, eval mode)")
    ax_acc.legend(loc="lower right")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
