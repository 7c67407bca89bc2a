"""`rethink data ...`: list, fetch, verify and export datasets (with a corruption applied)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import typer

from rethink.cli import app
from rethink.cli._oneline import OneLineCommand, OneLineGroup
from rethink.errors import RethinkError

data_app = typer.Typer(
    cls=OneLineGroup,
    help="Datasets: where they are found, fetching and verifying them, exporting corrupted copies.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")

_DATA_DIR = typer.Option(
    None, "--data-dir", help="Look here first (then RETHINK_DATA, /usr/share/datasets, the cache)."
)
_JSON = typer.Option(False, "--json", help="Print one JSON object as the last line.")


def list_rows(data_dir: str | None = None) -> list[dict]:
    """One row per registered dataset: name, shape, classes, sizes, where found, status.
    Only checks which files exist; decodes nothing."""
    from rethink.data import ENTRIES
    from rethink.data.registry import status

    rows = []
    for e in ENTRIES.values():
        ready, where = status(e.name, data_dir)
        rows.append({
            "name": e.name, "label": e.label, "shape": list(e.shape),
            "classes": e.num_classes, "train": e.sizes[0], "test": e.sizes[1],
            "where": where, "status": "ready" if ready else "missing",
            "how_to_get": e.how_to_get or f"pip install the package it ships with ({where})",
        })  # fmt: skip
    return rows


@data_app.command("list", cls=OneLineCommand)
def list_command(data_dir: str = _DATA_DIR, as_json: bool = _JSON) -> None:
    """Show every dataset: shape, classes, sizes, where it is found and whether it is ready."""
    rows = list_rows(data_dir)
    if as_json:
        print(json.dumps({"datasets": rows}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rethink datasets (also: imagefolder:PATH\\[@SIZE])")
    for col in ("name", "shape", "classes", "train / test", "status", "where"):
        table.add_column(col, overflow="fold", no_wrap=col != "where")
    for r in rows:
        ok = r["status"] == "ready"
        table.add_row(
            r["name"], "x".join(map(str, r["shape"])), str(r["classes"]),
            f"{r['train']:,} / {r['test']:,}",
            "ready" if ok else "[yellow]missing[/yellow]", r["where"],
        )  # fmt: skip
    console = Console()
    console.print(table)
    for r in rows:
        if r["status"] != "ready":
            console.print(f"{r['name']}: {r['how_to_get']}.", soft_wrap=True)


@data_app.command("fetch", cls=OneLineCommand)
def fetch_command(
    name: str = typer.Argument(..., help="mnist, fashion-mnist, cifar10 or cifar100."),
    force: bool = typer.Option(False, "--force", help="Download again even if cached."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    as_json: bool = _JSON,
) -> None:
    """Download the official archive into the cache and check its published checksum."""
    from rethink.data import fetch

    paths = fetch(name, progress=progress and not as_json, force=force)
    if as_json:
        print(json.dumps({"dataset": name, "files": [str(p) for p in paths]}))
        return
    for p in paths:
        print(f"{p}: checksum ok")


@data_app.command("verify", cls=OneLineCommand)
def verify_command(
    name: str = typer.Argument(..., help="A dataset name (see `rethink data list`)."),
    data_dir: str = _DATA_DIR,
    as_json: bool = _JSON,
) -> None:
    """Re-check the checksums of a dataset's files and read it once; exit 2 if anything is off."""
    from rethink.data import clear_cache, load, verify

    records = verify(name, data_dir)
    clear_cache()  # read the files afresh, not from this process's memory
    ds = load(name, data_dir=data_dir)
    sizes = {"train": len(ds.y_train), "test": len(ds.y_test)}
    bad = [r for r in records if r.get("official") is False]
    if as_json:
        print(json.dumps({"dataset": name, "files": records, "sizes": sizes, "ok": not bad}))
    else:
        for r in records:
            verdict = {True: "ok", False: "MISMATCH", None: "no published checksum"}[r["official"]]
            against = f" ({r['checked_against']})" if r.get("checked_against") else ""
            print(f"{r['path']}: md5 {r.get('md5', '-')} {verdict}{against}")
        print(f"{ds.label}: {sizes['train']:,} train / {sizes['test']:,} test images read.")
    if bad:
        raise RethinkError(
            f"{len(bad)} file(s) of {name} do not match the published checksum "
            f"({bad[0]['path']}); fetch it again with `rethink data fetch {name} --force`."
        )


@data_app.command("export", cls=OneLineCommand)
def export_command(
    name: str = typer.Argument(..., help="A dataset name or imagefolder:PATH[@SIZE]."),
    out: str = typer.Option(..., "--out", help="The .npz file to write."),
    corruption: str = typer.Option("none", "--corruption", help="none, partial-labels, "
                                   "random-labels, shuffled-pixels, random-pixels, gaussian."),
    corrupt_prob: float = typer.Option(0.0, "--corrupt-prob", help="p for partial-labels."),
    seed: int = typer.Option(0, "--seed", help="Seed of the corruption draw."),
    train_size: int = typer.Option(None, "--train-size", help="Stratified training subset."),
    subset_seed: int = typer.Option(0, "--subset-seed", help="Seed of the training subset."),
    preprocess: str = typer.Option("standardize", "--preprocess", help="standardize, paper, unit."),
    corrupt_test: bool = typer.Option(False, "--corrupt-test",
                                      help="Also corrupt the test split (not shuffled-pixels: "
                                      "that always applies to test)."),
    data_dir: str = _DATA_DIR,
    as_json: bool = _JSON,
) -> None:  # fmt: skip
    """Write a prepared (corrupted, preprocessed) dataset to one .npz: x_train, y_train,
    x_test, y_test, changed (bool over the training set), y_train_true and meta (JSON)."""
    import numpy as np

    from rethink.data import load, prepare

    out = Path(out)
    if out.suffix != ".npz":
        raise RethinkError(f"--out must name a .npz file, got {str(out)!r}.")
    ds = load(name, data_dir=data_dir, train_size=train_size, subset_seed=subset_seed)
    prep = prepare(ds, preprocess=preprocess, corruption=corruption,
                   corrupt_prob=corrupt_prob, seed=seed, corrupt_test=corrupt_test)  # fmt: skip
    meta = dict(prep.meta, subset_seed=subset_seed, class_names=list(ds.class_names))
    if out.is_dir():
        raise RethinkError(f"--out {out} is a folder; name the .npz file to write.")
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial.npz", dir=out.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f, x_train=prep.x_train.numpy(), y_train=prep.y_train.numpy(),
                x_test=prep.x_test.numpy(), y_test=prep.y_test.numpy(),
                changed=prep.changed.numpy(), y_train_true=prep.y_train_clean.numpy(),
                meta=np.array(json.dumps(meta)),
            )  # fmt: skip
        os.replace(tmp, out)
    except OSError as err:  # a full disk, a read-only folder, a file where a folder should be
        raise RethinkError(f"cannot write {out} ({err.strerror or err}).") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    summary = {"out": str(out), "dataset": name, "corruption": corruption,
               "train": len(prep.y_train), "test": len(prep.y_test),
               "realized_fraction": prep.realized_fraction}  # fmt: skip
    if as_json:
        print(json.dumps(summary))
    else:
        print(f"wrote {out}: {ds.label}, {corruption}, {len(prep.y_train):,} train "
              f"({prep.realized_fraction:.1%} changed) / {len(prep.y_test):,} test.")  # fmt: skip
