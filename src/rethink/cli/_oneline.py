"""Usage errors as one sentence: command and group classes that turn click's usage errors
(missing argument, unknown option or subcommand, an option without its value) into a
RethinkError, which `main()` prints as one `error: ...` line with exit status 2, instead of
a usage box: `rethink data nope` says "error: No such command 'nope'; see `rethink data
--help`."

    @app.command("report", cls=OneLineCommand)
    data_app = typer.Typer(cls=OneLineGroup, ...)
"""

from __future__ import annotations

from typer.core import TyperCommand, TyperGroup

from rethink.errors import RethinkError

try:  # typer >= 0.17 vendors click as typer._click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover  (older typer uses click itself)
    from click.exceptions import UsageError


def _one_line(ctx, err: UsageError) -> RethinkError:
    text = err.format_message().strip().rstrip(".")
    return RethinkError(f"{text}; see `{ctx.command_path} --help`.")


def _parse(parse, ctx, args):
    try:
        return parse(ctx, args)
    except UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # `rethink data`: show the help
            raise
        raise _one_line(ctx, err) from None


class OneLineCommand(TyperCommand):
    """A typer command whose usage errors are one sentence (no box, no 'Try --help'), and
    whose --help flag shows no value type in the help table (it takes no value)."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def parse_args(self, ctx, args):
        return _parse(super().parse_args, ctx, args)


class OneLineGroup(TyperGroup):
    """A typer group whose unknown subcommand (or bad group option) is one sentence."""

    def parse_args(self, ctx, args):
        return _parse(super().parse_args, ctx, args)

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except UsageError as err:
            raise _one_line(ctx, err) from None
