"""Command groups whose usage errors are one sentence, as OneLineCommand does for commands:
`rethink data nope` says "error: No such command 'nope'; see `rethink data --help`." instead
of drawing a usage box.

    data_app = typer.Typer(cls=OneLineGroup, ...)
"""

from __future__ import annotations

from typer.core import TyperGroup

from rethink.cli._oneline import UsageError
from rethink.errors import RethinkError


class OneLineGroup(TyperGroup):
    """A typer group that turns an unknown subcommand (or a bad group option) into a
    RethinkError, which `main()` prints as one `error: ...` line with exit status 2."""

    def _one_line(self, ctx, err: UsageError) -> RethinkError:
        text = err.format_message().strip().rstrip(".")
        return RethinkError(f"{text}; see `{ctx.command_path} --help`.")

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except UsageError as err:
            if type(err).__name__ == "NoArgsIsHelpError":
                raise
            raise self._one_line(ctx, err) from None

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except UsageError as err:
            raise self._one_line(ctx, err) from None
