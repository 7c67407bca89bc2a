"""`--stop-after DURATION`: a time budget for `rethink run`, `rethink sweep` and
`rethink reproduce`.

    rethink sweep table1 --scale cifar --jobs 2 --stop-after 2h30m

Each run in flight stops at its first epoch end after the budget, with that epoch
checkpointed and the run marked interrupted, so nothing computed is lost; a sweep starts no
run after it. The command then exits with status 3 (STOPPED) and running it again resumes.
DURATION is seconds (`90`, `90s`) or a sum of parts with units d, h, m, s (`45m`, `2h30m`,
`1.5h`, `1d`); `0` stops at the first epoch end.
"""

from __future__ import annotations

import math
import re

import typer

from rethink.errors import RethinkError

STOPPED = 3  # the exit status of a command that stopped at its time budget (resumable)

STOP_AFTER = typer.Option(
    None,
    "--stop-after",
    metavar="DURATION",
    help="A time budget, e.g. 2h30m, 45m, 900 (seconds): each run stops at its first epoch end "
    "after it, checkpointed; exit status 3; run again to resume.",
)

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([dhms])")


def parse_duration(text: str | None) -> float | None:
    """'90' / '90s' / '45m' / '2h30m' / '1.5h' / '1d' -> seconds (None -> None); anything else
    (a negative, empty or non-finite value, an unknown unit) raises RethinkError."""
    if text is None:
        return None
    t = text.strip().lower().replace(" ", "")
    bad = RethinkError(
        f"--stop-after takes a duration such as 2h30m, 45m, 90s or 900 (seconds), got {text!r}."
    )
    if not t:
        raise bad
    try:
        seconds = float(t)  # a plain number: seconds
    except ValueError:
        pos, seconds = 0, 0.0
        for m in _PART.finditer(t):
            if m.start() != pos:
                raise bad from None
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(t) or pos == 0:
            raise bad from None
    if not math.isfinite(seconds) or seconds < 0:
        raise bad
    return seconds
