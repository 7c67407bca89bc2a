"""Where rethink looks for data files and where it caches them.

Search order for a dataset called NAME, first hit wins:
1. the `--data-dir` argument (the folder itself and `DIR/NAME/`),
2. the environment variable `RETHINK_DATA` (same two places),
3. the system location of Debian's dataset packages, `/usr/share/datasets/NAME/`,
4. the user cache, `RETHINK_CACHE` or `~/.cache/rethink`, as `CACHE/NAME/` (where
   `rethink data fetch NAME` puts downloads).
"""

from __future__ import annotations

import os
from pathlib import Path

# Module attribute (not a constant baked into functions) so tests can point it elsewhere.
SYSTEM_DATA = Path("/usr/share/datasets")


def cache_dir() -> Path:
    """The user cache: `RETHINK_CACHE`, else `~/.cache/rethink` (not created here)."""
    env = os.environ.get("RETHINK_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rethink"


def roots(data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The places searched, in order, as (how it was chosen, folder) pairs."""
    out: list[tuple[str, Path]] = []
    if data_dir is not None:
        out.append(("--data-dir", Path(data_dir).expanduser()))
    env = os.environ.get("RETHINK_DATA")
    if env:
        out.append(("RETHINK_DATA", Path(env).expanduser()))
    out.append(("system", SYSTEM_DATA))
    out.append(("cache", cache_dir()))
    return out


def candidates(name: str, data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """Folders that may hold NAME's files, in search order: `ROOT/NAME/` before `ROOT/`.

    The system location and the cache only hold datasets in per-name folders.
    """
    out: list[tuple[str, Path]] = []
    for how, root in roots(data_dir):
        out.append((how, root / name))
        if how in ("--data-dir", "RETHINK_DATA"):
            out.append((how, root))
    return out


def searched_text(name: str, data_dir: str | os.PathLike | None = None) -> str:
    """The searched folders as one short phrase for error messages."""
    return ", ".join(str(p) for _, p in candidates(name, data_dir))
