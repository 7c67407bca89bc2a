"""docs/ARCHITECTURE.md's import rules, checked by reading every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rethink"


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` imports never run
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # also `if TYPE_CHECKING` / try blocks at module level
        nodes = [
            n
            for top in tree.body
            for n in ast.walk(top)
            if not isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        ]
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _files(part: str) -> list[Path]:
    p = SRC / part
    return sorted(p.rglob("*.py")) if p.is_dir() else [p.with_suffix(".py")]


def _hits(imports: set[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(i for i in imports for b in banned if i == b or i.startswith(b + "."))


ENGINE = ("rethink.train", "rethink.runner", "rethink.lifecycle", "rethink._evaluation")
RULES = [
    # (part, banned, top-level only)
    ("spec", ("torch", "rethink.models", "rethink.data", *ENGINE, "rethink.store"), True),
    ("train", ("rethink.store", "rethink.lifecycle", "rethink.runner", "rethink.sweep",
               "rethink.cli"), False),
    ("_evaluation", ("rethink.store", "rethink.lifecycle", "rethink.runner", "rethink.cli"), False),
    ("schedules", ("torch", "rethink.store", "rethink.runner", "rethink.cli"), False),
    ("augment", ("rethink.store", "rethink.lifecycle", "rethink.runner", "rethink.cli"), False),
    ("store", ("torch", *ENGINE, "rethink.cli"), True),
    ("lifecycle", ("torch", "rethink.runner", "rethink.sweep", "rethink.cli"), True),
    ("lifecycle", ("rethink.runner", "rethink.sweep", "rethink.cli"), False),
    ("report", (*ENGINE, "rethink.sweep", "rethink.cli"), False),
    ("export", (*ENGINE, "rethink.sweep", "rethink.cli"), False),
    ("progress", (*ENGINE, "rethink.sweep", "rethink.cli", "torch"), False),
    ("corruptions", (*ENGINE, "rethink.store", "rethink.cli"), False),
    ("data", (*ENGINE, "rethink.store", "rethink.cli", "rethink.sweep"), False),
    ("models", ("rethink.data", *ENGINE, "rethink.store", "rethink.cli"), False),
]  # fmt: skip


@pytest.mark.parametrize(("part", "banned", "top"), RULES, ids=[f"{r[0]}-{r[2]}" for r in RULES])
def test_a_part_never_imports_what_it_must_not(part, banned, top):
    bad = {}
    for f in _files(part):
        hits = _hits(_imports(f, top_level_only=top), banned)
        if hits:
            bad[str(f.relative_to(SRC))] = hits
    assert not bad, bad


def test_nothing_outside_the_cli_imports_the_cli():
    bad = {}
    for f in SRC.rglob("*.py"):
        if "cli" in f.relative_to(SRC).parts or f.name == "__main__.py":
            continue
        hits = _hits(_imports(f, top_level_only=False), ("rethink.cli",))
        if hits:
            bad[str(f.relative_to(SRC))] = hits
    assert not bad, bad
