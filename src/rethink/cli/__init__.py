"""The `rethink` command-line program.

Each command group lives in its own module and adds itself to `app` on import. `main()` turns
a RethinkError (and a few other bad-input errors) into one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    name="rethink",
    help="Randomization tests of 'Understanding deep learning requires rethinking "
    "generalization' (Zhang et al., ICLR 2017).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Imported for their side effect: each module adds its commands to `app`.
    import importlib

    for name in ("data", "models", "run", "sweep", "report", "theory"):
        try:
            importlib.import_module(f"rethink.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"rethink.cli.{name}":
                raise


def main(argv: list[str] | None = None) -> None:
    from rethink.errors import RethinkError

    _register()
    try:
        app(args=argv, standalone_mode=False)
    except RethinkError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted; what finished is in the store, rerun the same command "
              "to resume.", file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # click's usage errors arrive here in non-standalone mode
        import click

        if isinstance(err, click.exceptions.Abort):
            sys.exit(130)
        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if isinstance(err, click.exceptions.Exit):
            sys.exit(err.exit_code)
        raise
