"""`rethink run`, `rethink runs` and `rethink demo`: one run into a store, list a store, and
the README's main job (Fig. 1a in miniature)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from rethink.cli import app
from rethink.cli._budget import STOP_AFTER, STOPPED, parse_duration
from rethink.cli._oneline import OneLineCommand
from rethink.cli._run_output import Output, console_for, json_result, summary_table
from rethink.cli._sets import SET_OPTION, parse_sets
from rethink.errors import RethinkError

# Friendly names accepted for --corruption, beside the spec's own (none, random-labels, ...).
_CORRUPTION_ALIASES = {
    "true": "none",
    "true-labels": "none",
    "random": "random-labels",
    "partial": "partial-labels",
}


def read_config(path: Path) -> dict[str, Any]:
    """The TOML file at `path` as a dict (sections data/corruption/model/train, or short keys)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser as a package
        import tomli as tomllib

    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise RethinkError(f"the config file {path} does not exist.") from None
    except OSError as err:
        raise RethinkError(f"cannot read the config file {path} ({err.strerror}).") from None
    try:
        return tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise RethinkError(f"{path} is not valid TOML ({err}).") from None


def build_spec(config: Path | None, flags: dict[str, Any], sets: dict[str, Any] | None = None):
    """RunSpec from an optional TOML file, then the CLI flags that were given (not None),
    then the --set overrides."""
    from rethink.spec import RunSpec

    spec = RunSpec.from_dict(read_config(config)) if config is not None else RunSpec()
    given = {k: v for k, v in flags.items() if v is not None}
    if "labels" in given:
        given["labels"] = _CORRUPTION_ALIASES.get(given["labels"], given["labels"])
    spec = spec.override(given).override(sets or {})
    return spec.normalized()


@app.command("run", cls=OneLineCommand)
def run_command(
    dataset: str = typer.Option(None, "--dataset", help="Dataset name (rethink data list)."),
    model: str = typer.Option(None, "--model", help="Model name (rethink models)."),
    corruption: str = typer.Option(
        None,
        "--corruption",
        help="none | partial-labels | random-labels | shuffled-pixels | random-pixels | gaussian"
        " | cifar10n-aggre|worst|random1|2|3 | noise-matrix.",
    ),
    corrupt_prob: float = typer.Option(None, "--corrupt-prob", help="partial-labels: p."),
    matrix: str = typer.Option(
        None, "--matrix", help="noise-matrix: cifar10n-worst etc. or a K x K .npy/.csv file."
    ),
    train_size: int = typer.Option(None, "--train-size", help="Stratified training subset."),
    preprocess: str = typer.Option(None, "--preprocess", help="standardize | paper | unit."),
    corrupt_test: bool = typer.Option(
        None, "--corrupt-test/--no-corrupt-test", help="Corrupt the test split too."
    ),
    lr: float = typer.Option(None, "--lr", help="Learning rate (default: the model's paper lr)."),
    schedule: str = typer.Option(
        None,
        "--schedule",
        help="constant | paper (x0.95 per 50,000 examples) | paper-epoch | exponential | step"
        " | cosine.",
    ),
    lr_decay: float = typer.Option(None, "--lr-decay", help="paper/exponential: x per epoch."),
    momentum: float = typer.Option(None, "--momentum", help="SGD momentum (default 0.9)."),
    weight_decay: float = typer.Option(None, "--weight-decay", help="L2 penalty (default 0)."),
    augment: str = typer.Option(None, "--augment", help="none | crop | flip | crop+flip."),
    dropout: float = typer.Option(None, "--dropout", help="Dropout probability (default 0)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Examples per step (default 128)."),
    max_epochs: int = typer.Option(None, "--max-epochs", help="100; 500 with --until-fit."),
    until_fit: bool = typer.Option(
        None, "--until-fit/--no-until-fit", help="Stop once the training set is 100% fit."
    ),
    fit_loss: float = typer.Option(None, "--fit-loss", help="...or its loss is below this."),
    checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="Epochs (default 5)."),
    test_eval: str = typer.Option(
        None,
        "--test-eval",
        help="every-epoch (default) | spaced | ends: when the test split is evaluated.",
    ),
    precision: str = typer.Option(None, "--precision", help="fp32 (default) | bf16 (CUDA only)."),
    record_examples: bool = typer.Option(
        None,
        "--record-examples/--no-record-examples",
        help="Keep per-example records (rethink dynamics).",
    ),
    seed: int = typer.Option(None, "--seed", help="Seed of init, order, corruption (default 0)."),
    config: str = typer.Option(None, "--config", help="A TOML spec; flags override it."),
    sets: list[str] = SET_OPTION,
    store: str = typer.Option("runs.db", "--store", help="The results store (SQLite)."),
    data_dir: str = typer.Option(None, "--data-dir", help="Where dataset files are found."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    threads: int = typer.Option(None, "--threads", help="CPU threads (default: torch's)."),
    stop_after: str = STOP_AFTER,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Train one model on one (possibly corrupted) dataset and record it in the store.

    Running the same spec again resumes it from its last checkpoint, or, if it finished,
    prints the stored result without training."""
    from rethink import runner

    budget = parse_duration(stop_after)

    flags = {
        "dataset": dataset,
        "model.name": model,
        "labels": corruption,
        "corrupt_prob": corrupt_prob,
        "corruption.matrix": matrix,
        "train_size": train_size,
        "preprocess": preprocess,
        "corrupt_test": corrupt_test,
        "lr": lr,
        "schedule": schedule,
        "lr_decay_per_epoch": lr_decay,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "augment": augment,
        "dropout": dropout,
        "batch_size": batch_size,
        "max_epochs": max_epochs,
        "until_fit": until_fit,
        "fit_loss": fit_loss,
        "checkpoint_every": checkpoint_every,
        "record_examples": record_examples,
        "test_eval": test_eval,
        "precision": precision,
        "seed": seed,
    }
    spec = build_spec(Path(config) if config else None, flags, parse_sets(sets))
    from rethink.progress import RunProgress

    out = Output(spec.train.max_epochs, quiet_stdout=as_json)
    out.say(f"run {spec.run_id()}: {spec.describe()}, store {store}")
    view = RunProgress(spec.describe(), spec.train.max_epochs, stream=out.stream)
    result = runner.run(
        spec,
        store=store,
        data_dir=data_dir,
        device=device,
        progress=view,
        threads=threads,
        stop_after=budget,
    )
    stopped = result["status"] == "interrupted" and not result.get("skipped")
    if stopped:
        out.say(
            f"stopped at the time budget ({stop_after}) after epoch {result.get('epochs')}, "
            f"checkpointed; run the same command again to resume."
        )
    if result.get("skipped"):
        out.say(f"run {spec.run_id()} already {result['status']} in {store}; not run again.")
    if spec.train.until_fit and result.get("epochs_to_fit") is None and not stopped:
        out.say(
            f"the training set was not fit within {result.get('epochs')} epochs; "
            "raise --max-epochs or try a constant schedule or another --lr."
        )
    out.summary([(spec.run_id()[:8], result)], title=f"{spec.run_id()}: {spec.describe()}")
    if as_json:
        print(json.dumps(json_result(result, spec.run_id())))
    if stopped:
        raise typer.Exit(STOPPED)


def _forget_runs(store: str, keys: list[str]) -> list[dict]:
    """rethink.lifecycle.forget, each run named by its sweep label where it has one (the spec
    summary omits what a row varies, e.g. crops and weight decay) for the message."""
    from rethink.lifecycle import forget
    from rethink.spec import RunSpec

    out = []
    for f in forget(store, keys):
        label = f.pop("label")
        spec = f.pop("spec")
        if not label:
            try:
                label = RunSpec.from_dict(spec).describe()
            except RethinkError:
                label = "?"
        out.append({**f, "label": label})
    return out


@app.command("runs", cls=OneLineCommand)
def runs_command(
    store: str = typer.Option("runs.db", "--store", help="The results store (SQLite)."),
    csv: str = typer.Option(
        None, "--csv", help="Also write runs.csv and epochs.csv here (= rethink export --to csv)."
    ),
    forget: list[str] = typer.Option(  # noqa: B008  (a repeatable option)
        None,
        "--forget",
        metavar="RUN",
        help="Delete a run (id or unique prefix) with its epochs, result, records, measures "
        "and checkpoint, so that a sweep trains it again from the start (repeatable).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """List the runs in a store (and export them to CSV, or forget some)."""
    from rethink.spec import RunSpec
    from rethink.store import Store

    forgotten = _forget_runs(store, forget) if forget else []
    with Store(store, readonly=True) as st:
        runs = st.runs()
    written = []
    if csv is not None:  # every column: spec, versions, provenance, results (rethink export)
        from rethink.export import export

        written = export(store, "csv", csv)
    rows = []
    for r in runs:
        try:
            label = RunSpec.from_dict(r["spec"]).describe()
        except RethinkError:
            label = r.get("label") or "?"
        rows.append((label, r))
    if as_json:
        keep = ("run_id", "status", "sweep", "label", "error", "provenance")
        items = [
            {**{k: r.get(k) for k in keep}, "spec": r["spec"], "result": r["result"]} for r in runs
        ]
        csv_paths = [str(p) for p in written]
        obj = {"store": str(store), "runs": items, "csv": csv_paths, "forgot": forgotten}
        print(json.dumps(obj))
        return
    for f in forgotten:
        print(
            f"forgot run {f['run_id']} ({f['label']}, {f['status']}, {f['epochs']} "
            f"epoch{'' if f['epochs'] == 1 else 's'}); "
            "a sweep or `rethink run` trains it again from the start.",
            file=sys.stderr,
        )
    console = console_for(sys.stdout)
    table = summary_table(
        [
            (f"{r['run_id']}  {label}", {**(r["result"] or {}), "status": r["status"]})
            for label, r in rows
        ],
        title=f"{len(runs)} runs in {store}",
    )
    console.print(table)
    for r in runs:
        p = r.get("provenance") or {}
        if p:
            threads = p.get("threads")
            threads = ",".join(map(str, threads)) if isinstance(threads, list) else threads
            isa = p.get("cpu_capability")
            isa = ",".join(map(str, isa)) if isinstance(isa, list) else isa
            sha = (p.get("data_sha256") or "-")[:12]
            console.print(
                f"{r['run_id']}  threads {threads}  {p.get('device')}"
                + (f" ({isa})" if isa else "")
                + f"  git {p.get('git') or '-'}"
                f"  data {sha}  torch {p.get('torch')}  host {p.get('host')}",
                markup=False,
            )
    for r in runs:
        if r.get("error"):
            console.print(f"{r['run_id']} {r['status']}: {r['error']}", markup=False)
    for p in written:
        console.print(f"wrote {p}", markup=False)


@app.command("demo", cls=OneLineCommand)
def demo_command(
    out: str = typer.Option("demo", "--out", help="Folder for runs.db and the report."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    data_dir: str = typer.Option(None, "--data-dir", help="Where dataset files are found."),
    seed: int = typer.Option(0, "--seed", help="Seed of all five runs."),
    threads: int = typer.Option(None, "--threads", help="CPU threads (default: torch's)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Fig. 1a in miniature: true labels, random labels, shuffled pixels, random pixels and
    Gaussian inputs on mnist-5k, each trained until it fits (about a minute on 2 CPU cores).
    The fig1a preset's demo scale (= rethink reproduce fig1a --scale demo): writes
    OUT/runs.db and the report (OUT/report.html, Fig. 1a) and prints epochs-to-fit and
    accuracies."""
    from rethink.cli.sweep import _Progress
    from rethink.demo import PRESET, SCALE, run_demo
    from rethink.sweep import load_sweep, preset_path

    plan = load_sweep(preset_path(PRESET), scale=SCALE, overrides={"seed": seed})
    with _Progress(plan, quiet=as_json) as view:
        summary = run_demo(
            out, device=device, data_dir=data_dir, seed=seed, threads=threads,
            on_event=view.event,
        )  # fmt: skip
    rows = [(r["setting"], r) for r in summary["runs"]]
    console = console_for(sys.stderr if as_json else sys.stdout)
    console.print(summary_table(rows, title="Fig. 1a in miniature (mnist-5k, MLP 1x512)"))
    console.print(
        f"store: {summary['store']}  figure: {summary['figure']}  report: {summary['report']}",
        markup=False,
    )
    if as_json:
        runs = [{"setting": r["setting"], **json_result(r, r["run_id"])} for r in summary["runs"]]
        print(json.dumps({"store": summary["store"], "figure": summary["figure"], "runs": runs}))
