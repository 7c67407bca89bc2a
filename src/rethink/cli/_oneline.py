"""Usage errors as one sentence: a command class that turns click's usage error (missing
argument, unknown option, an option without its value) into a RethinkError, which `main()`
prints as one `error: ...` line with exit status 2, instead of a usage box.

    @app.command("report", cls=OneLineCommand)
"""

from __future__ import annotations

from typer.core import TyperCommand

from rethink.errors import RethinkError

try:  # typer >= 0.17 vendors click as typer._click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover  (older typer uses click itself)
    from click.exceptions import UsageError


class OneLineCommand(TyperCommand):
    """A typer command whose usage errors are one sentence (no box, no 'Try --help'), and
    whose --help flag shows no value type in the help table (it takes no value)."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except UsageError as err:
            if type(err).__name__ == "NoArgsIsHelpError":
                raise
            text = err.format_message().strip().rstrip(".")
            raise RethinkError(f"{text}; see `{ctx.command_path} --help`.") from None
