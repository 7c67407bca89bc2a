"""`rethink ARGV` in the test's own process, for tests that read what it printed."""

from __future__ import annotations

from rethink.cli import main


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """main(argv) -> (exit status, stdout, stderr), captured with pytest's `capsys`."""
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err
