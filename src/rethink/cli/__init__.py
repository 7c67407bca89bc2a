"""The `rethink` command-line program.

Each command group lives in its own module and adds itself to `app` on import. `main()` turns
a RethinkError (and a few other bad-input errors) into one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys

import typer

from rethink.cli._oneline import OneLineGroup  # noqa: E402

app = typer.Typer(
    cls=OneLineGroup,  # an unknown command is one `error:` line, not a usage box
    name="rethink",
    help="Randomization tests of 'Understanding deep learning requires rethinking "
    "generalization' (Zhang et al., ICLR 2017).",
    no_args_is_help=True,
    add_completion=True,  # rethink --install-completion / --show-completion [bash|zsh|fish]
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Randomization tests of Zhang et al. (ICLR 2017): fit random labels, measure
    generalization. Each command's --help says more."""


@app.command()
def version() -> None:
    """Print rethink's version and the versions it runs with."""
    import platform

    import torch

    from rethink import __version__

    print(f"rethink {__version__}, torch {torch.__version__}, python {platform.python_version()}")


def _register() -> None:
    # Imported for their side effect: each module adds its commands to `app`.
    import importlib

    names = ("data", "models", "run", "sweep", "report", "export", "theory", "dynamics", "measures")
    for name in names:
        try:
            importlib.import_module(f"rethink.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"rethink.cli.{name}":
                raise


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `rethink` script. Click itself reports usage errors (exit 2)."""
    from rethink.errors import RethinkError

    _register()
    try:
        app(args=argv, prog_name="rethink")
    except RethinkError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
