"""The one exception type a user ever sees.

A `RethinkError` carries one plain sentence that says what was wrong and, where it helps,
what to do. The command-line program prints it on one line and exits with status 2; Python
callers catch it like any exception. Everything rethink raises for bad input (a malformed
spec, a missing or corrupt file, an unknown name) is a RethinkError, never a traceback.
"""


class RethinkError(Exception):
    """A user-facing error: `str(err)` is one sentence."""
