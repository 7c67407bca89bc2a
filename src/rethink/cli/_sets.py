"""`--set KEY=VALUE`: the one dotted override syntax of every command that takes a spec.

    rethink run --dataset digits --model mlp-1x64 --set train.lr=0.05 --set data.train_size=500
    rethink sweep fig1a --set train.max_epochs=5

KEY is any spec key (`rethink.spec`: data.*, corruption.*, model.*, train.*, seed, or a unique
short name such as lr); VALUE is coerced to the field's type exactly as a TOML file's value
(`null` unsets an optional field). Unknown keys and bad values get the same one-sentence
errors as the TOML path.
"""

from __future__ import annotations

from typing import Any

import typer

from rethink.errors import RethinkError

SET_OPTION = typer.Option(
    None,
    "--set",
    metavar="KEY=VALUE",
    help="Override any spec field, e.g. --set train.lr=0.05 (repeatable; rethink.spec keys).",
)


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """['train.lr=0.05', ...] -> {'train.lr': '0.05', ...}, validated against the spec."""
    from rethink.spec import _resolve_key

    out: dict[str, Any] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise RethinkError(f"--set takes KEY=VALUE (e.g. train.lr=0.05), got {item!r}.")
        _resolve_key(key)  # unknown keys: one sentence listing the known ones
        value = value.strip()
        out[key] = None if value.lower() in ("null", "none") else value
    return out
