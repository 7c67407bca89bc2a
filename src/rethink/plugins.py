"""Users' own models and datasets: `module:function` references and entry points.

A model or dataset name that is not one of rethink's own may be

- a reference `module:function` (e.g. `mypkg.nets:make_wide_mlp`) to any importable function,
  or
- the name of an entry point in the group `rethink.models` or `rethink.datasets` of an
  installed package (a package that registers several), whose value is such a reference.

A model function takes the arguments of a registered builder, `(input_shape, num_classes,
dropout)`, and returns a `torch.nn.Module`; a dataset function takes no arguments (or a
`data_dir` keyword) and returns a `rethink.data.Dataset`. `rethink.models.build` and
`rethink.data.load` call them; this module only finds them and says what they are.

Modules are imported as Python would; when the top-level module is not importable, the
current folder is added to `sys.path` and the import retried (as uvicorn does for `main:app`),
so `rethink run --model nets:make` works from the folder holding `nets.py`.

`source_digest(ref)` is the SHA-256 of the function's source text (`inspect.getsource`),
falling back to the bytes of its module's file where the source of the function itself
cannot be read. It goes into a run's id, so two different functions never share a run id.
It covers the function's own text only: a helper it calls, defined elsewhere, can change
without changing the digest (give such a change a new function name, or put the helper
inside the function).

This module imports neither torch nor the model zoo.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rethink.errors import RethinkError

GROUPS = {"model": "rethink.models", "dataset": "rethink.datasets"}
# Prefixes that look like module:function but mean something else to rethink.
RESERVED = ("imagefolder",)
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_REF = re.compile(rf"({_IDENT}(?:\.{_IDENT})*):({_IDENT}(?:\.{_IDENT})*)")
_WHAT = {"model": "model function", "dataset": "dataset function", None: "function"}


def is_ref(name: object) -> bool:
    """True if `name` is a `module:function` reference (`imagefolder:PATH` is not one)."""
    if not isinstance(name, str):
        return False
    m = _REF.fullmatch(name)
    return m is not None and m.group(1).split(".")[0] not in RESERVED


def _split(ref: str) -> tuple[str, str]:
    if not is_ref(ref):
        raise RethinkError(
            f"{ref!r} is not a module:function reference (such as mypkg.nets:make_wide_mlp)."
        )
    module, _, function = ref.partition(":")
    return module, function


def import_module(module: str, ref: str | None = None) -> Any:
    """Import `module`; if its top-level package is not found, retry with the current folder
    on sys.path. Raises RethinkError (one sentence) if it cannot be imported."""
    what = f" (for {ref})" if ref else ""
    for attempt in (0, 1):
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as err:
            missing = err.name or ""
            ours = missing == module or module.startswith(missing + ".")
            if not ours:
                raise RethinkError(
                    f"importing module {module!r}{what} failed: it needs {missing!r}, "
                    "which is not installed."
                ) from None
            cwd = os.getcwd()
            if attempt == 0 and cwd not in sys.path and "" not in sys.path:
                sys.path.append(cwd)
                importlib.invalidate_caches()
                continue
            raise RethinkError(
                f"cannot import module {module!r}{what}: no module named {missing!r} in the "
                "current folder or on PYTHONPATH."
            ) from None
        except RethinkError:
            raise
        except Exception as err:  # SyntaxError, or an error raised while importing
            detail = " ".join(str(err).split()) or type(err).__name__
            raise RethinkError(
                f"importing module {module!r}{what} failed: {type(err).__name__}: {detail}."
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def resolve(ref: str, kind: str | None = None) -> Callable[..., Any]:
    """The function a `module:function` reference names (nested attributes allowed, as in
    `pkg.mod:Factory.build`). RethinkError if the module cannot be imported, has no such
    attribute, or it is not callable."""
    module_name, function = _split(ref)
    obj: Any = import_module(module_name, ref)
    for i, part in enumerate(function.split(".")):
        if not hasattr(obj, part):
            where = module_name if i == 0 else f"{module_name}:{'.'.join(function.split('.')[:i])}"
            raise RethinkError(
                f"module {where!r} has no function {part!r} (asked for by {ref}); "
                f"it defines: {_public(obj)}."
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise RethinkError(f"{ref} is {with_article(type(obj).__name__)}, not a {_WHAT[kind]}.")
    return obj


def with_article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _public(obj: Any) -> str:
    names = [n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None))]
    return ", ".join(names[:12]) + (" ..." if len(names) > 12 else "") if names else "nothing"


def check_call(fn: Callable[..., Any], ref: str, kind: str, *args: Any, **kwargs: Any) -> None:
    """RethinkError if `fn` cannot be called with these arguments (a wrong signature)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError:
        want = {
            "model": "(input_shape, num_classes, dropout)",
            "dataset": "no arguments (or a data_dir keyword)",
        }[kind]
        raise RethinkError(
            f"{ref} has the signature {sig}, but a {_WHAT[kind]} must take {want}."
        ) from None


def accepts(fn: Callable[..., Any], keyword: str) -> bool:
    """True if `fn` takes the keyword argument `keyword` (or **kwargs)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        (p.name == keyword and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
        or p.kind == p.VAR_KEYWORD
        for p in params
    )


def entry_points(kind: str) -> dict[str, Any]:
    """Installed entry points of group `rethink.models` / `rethink.datasets`: name -> EntryPoint
    (the first one of a name wins; nothing is imported). Read once per sys.path; call
    `_entry_points.cache_clear()` after installing a package into a running process."""
    return dict(_entry_points(GROUPS[kind], tuple(sys.path)))


@functools.lru_cache(maxsize=8)
def _entry_points(group: str, path: tuple[str, ...]) -> dict[str, Any]:
    # Cached per sys.path (what decides the installed distributions): a metadata scan costs
    # tens of ms, and run ids ask for every spec.
    from importlib.metadata import entry_points as _eps

    out: dict[str, Any] = {}
    for ep in _eps(group=group):
        out.setdefault(ep.name, ep)
    return out


def user_ref(kind: str, name: object) -> str | None:
    """The `module:function` reference behind a model / dataset name: the name itself if it is
    one, an entry point's value if it names one, else None (a built-in or unknown name).
    Callers check their built-in names first: built-ins win over entry points."""
    if kind not in GROUPS:
        raise ValueError(f"kind must be 'model' or 'dataset', not {kind!r}")
    if is_ref(name):
        return str(name)
    if not isinstance(name, str):
        return None
    ep = entry_points(kind).get(name)
    if ep is None:
        return None
    value = str(ep.value).replace(" ", "")
    if not is_ref(value):
        raise RethinkError(
            f"the entry point {name!r} of group {GROUPS[kind]} is {ep.value!r}, "
            "not a module:function reference."
        )
    return value


def _is_builtin(kind: str, name: str) -> bool:
    if kind == "model":
        from rethink.models import is_builtin

        return is_builtin(name)
    from rethink.data.registry import ENTRIES

    return name in ENTRIES


def _module_file(module_name: str) -> Path | None:
    mod = sys.modules.get(module_name) or import_module(module_name)
    file = getattr(mod, "__file__", None)
    return Path(file) if file else None


def _digest(ref: str) -> tuple[str, str, Path | None]:
    """(sha256, what was hashed: 'function source' or 'module file', the module's file)."""
    fn = resolve(ref)
    module_name, _ = _split(ref)
    file = _module_file(module_name)
    try:
        text = inspect.getsource(fn)
        return hashlib.sha256(text.encode("utf-8")).hexdigest(), "function source", file
    except (OSError, TypeError):
        pass
    if file is None or not file.is_file():
        raise RethinkError(
            f"cannot read the source of {ref}: neither the function's source nor its module's "
            "file is available, so runs of it could not be told apart."
        )
    return hashlib.sha256(file.read_bytes()).hexdigest(), "module file", file


def source_digest(ref: str) -> str:
    """SHA-256 (hex) of the referenced function's source, else of its module file's bytes."""
    return _digest(ref)[0]


def describe(ref: str) -> dict[str, Any]:
    """{"ref", "module", "function", "source_sha256", "file", "hashed"} of a reference;
    `hashed` says whether the digest is of the function's source or of its module file."""
    module_name, function = _split(ref)
    digest, hashed, file = _digest(ref)
    return {
        "ref": ref,
        "module": module_name,
        "function": function,
        "source_sha256": digest,
        "file": str(file) if file else None,
        "hashed": hashed,
    }


def identify(kind: str, name: object) -> dict[str, Any] | None:
    """`describe` of the user code behind a model / dataset name (a reference, or an entry
    point: then also "entry_point": {"group", "name", "package", "version"}), or None for a
    name that names no user code: a built-in name (built-ins win over entry points of the same
    name) or an unknown one. Imports nothing heavy for a built-in name unless an entry point
    of the same name is installed."""
    ref = user_ref(kind, name)
    if ref is None:
        return None
    if ref != name and _is_builtin(kind, str(name)):
        return None
    out = describe(ref)
    if ref != name:
        ep = entry_points(kind)[name]
        dist = getattr(ep, "dist", None)
        out["entry_point"] = {
            "group": GROUPS[kind],
            "name": name,
            "package": getattr(dist, "name", None) if dist else None,
            "version": getattr(dist, "version", None) if dist else None,
        }
    return out


def spec_code(model: object, dataset: object) -> dict[str, dict[str, Any]]:
    """`identify` of a spec's model name and dataset name: {"model": {...}, "dataset": {...}},
    leaving out a name that is no user code (built-ins, imagefolder:PATH). What a run id and a
    run's provenance record about user code: run_id hashes each entry's "source_sha256"."""
    out = {}
    for kind, name in (("model", model), ("dataset", dataset)):
        info = identify(kind, name)
        if info is not None:
            out[kind] = info
    return out


def local_module_paths(refs: list[str]) -> list[str]:
    """For Ray workers on other machines: the file (single-module) or package folder of each
    referenced top-level module that lives outside the installed packages (the current folder,
    PYTHONPATH), so it can be shipped with runtime_env py_modules. Installed ones are left out:
    workers must have them installed too."""
    import sysconfig

    installed = {
        Path(p).resolve()
        for key in ("purelib", "platlib", "stdlib", "platstdlib")
        if (p := sysconfig.get_paths().get(key))
    }
    out: list[str] = []
    for ref in refs:
        top = _split(ref)[0].split(".")[0]
        mod = import_module(top, ref)
        file = getattr(mod, "__file__", None)
        if not file:
            continue
        path = Path(file).resolve()
        if path.name == "__init__.py":
            path = path.parent
        if any(root == path or root in path.parents for root in installed):
            continue
        if str(path) not in out:
            out.append(str(path))
    return out
