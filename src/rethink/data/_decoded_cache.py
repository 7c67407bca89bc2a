"""The decoded-image cache: uint8 arrays and a meta.json under `CACHE/decoded/<key>/`.

Every load validates the entry before trusting it: meta.json must be the object this module
writes (class names, test split, split sizes, image shape), each .npy file's header must match
its dtype, rank and the sizes in meta.json, and the bytes on disk must be exactly what the
header promises (so a 0-byte or truncated file, or a header promising terabytes, is caught
before numpy allocates anything). A damaged entry is reported as a reason; the caller decodes
again and `write()` swaps the new entry in with renames, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

ARRAYS = ("x_train", "y_train", "x_test", "y_test")
_DTYPES = {"x": np.dtype(np.uint8), "y": np.dtype(np.int64)}
_META_KEYS = {"class_names", "test_split", "sizes", "image_shape"}


class Damaged(Exception):
    """A cache entry that exists but cannot be trusted; `str()` says why, briefly."""


def read(folder: Path, test_splits: tuple[str, ...]) -> tuple[dict | None, str | None]:
    """(arrays, None) for a sound entry, (None, None) if there is none, (None, why) if damaged.

    arrays: x_train, x_test uint8 (N, 3, H, W); y_train, y_test int64 (N,); class_names;
    test_split.
    """
    if not folder.exists() and not folder.is_symlink():
        return None, None
    try:
        if not folder.is_dir():
            raise Damaged("it is not a folder")
        return _read(folder, test_splits), None
    except Damaged as err:
        return None, str(err)


def _read(folder: Path, test_splits: tuple[str, ...]) -> dict:
    meta = _meta(folder / "meta.json", test_splits)
    out: dict = {"class_names": meta["class_names"], "test_split": meta["test_split"]}
    for name in ARRAYS:
        split = name.split("_")[1]
        ndim = 4 if name[0] == "x" else 1
        arr = _npy(folder / f"{name}.npy", _DTYPES[name[0]], ndim)
        if arr.shape[0] != meta["sizes"][split]:
            raise Damaged(f"{name}.npy holds {arr.shape[0]} rows, meta.json says {split} has "
                          f"{meta['sizes'][split]}")  # fmt: skip
        if ndim == 4 and list(arr.shape[1:]) != meta["image_shape"]:
            raise Damaged(f"{name}.npy holds images of shape {list(arr.shape[1:])}, meta.json "
                          f"says {meta['image_shape']}")  # fmt: skip
        out[name] = arr
    k = len(meta["class_names"])
    for name in ("y_train", "y_test"):
        y = out[name]
        if y.size and (int(y.min()) < 0 or int(y.max()) >= k):
            raise Damaged(f"{name}.npy holds labels outside 0..{k - 1}")
    if np.unique(out["y_train"]).size != k:
        raise Damaged("y_train.npy does not hold every class of meta.json")
    return out


def _meta(path: Path, test_splits: tuple[str, ...]) -> dict:
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise Damaged("meta.json is missing") from None
    except (OSError, ValueError) as err:
        raise Damaged(f"meta.json is unreadable ({err})") from None
    if not isinstance(meta, dict) or set(meta) != _META_KEYS:
        raise Damaged(f"meta.json is not the object rethink writes (got {str(meta)[:40]})")
    names, sizes, shape = meta["class_names"], meta["sizes"], meta["image_shape"]
    ok = (
        isinstance(names, list)
        and names
        and all(isinstance(n, str) and n for n in names)
        and len(set(names)) == len(names)
        and meta["test_split"] in test_splits
        and isinstance(sizes, dict)
        and set(sizes) == {"train", "test"}
        and all(type(v) is int and v > 0 for v in sizes.values())
        and isinstance(shape, list)
        and len(shape) == 3
        and shape[0] == 3
        and all(type(v) is int and v > 0 for v in shape)
    )
    if not ok:
        raise Damaged("meta.json has missing or malformed entries")
    return meta


def _npy(path: Path, dtype: np.dtype, ndim: int) -> np.ndarray:
    """Read one .npy after checking its header against the file size (no blind np.load:
    a 0-byte file makes np.load raise EOFError, and a header may promise any size)."""
    try:
        size = path.stat().st_size
        if size == 0:
            raise Damaged(f"{path.name} is empty (0 bytes)")
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, found = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, found = np.lib.format.read_array_header_2_0(f)
            if found != dtype or len(shape) != ndim or fortran:
                raise Damaged(f"{path.name} holds {found} of shape {shape}, expected {dtype} "
                              f"with {ndim} dimensions")  # fmt: skip
            count = int(np.prod(shape, dtype=np.int64)) if shape else 1
            promised, held = count * dtype.itemsize, size - f.tell()
            if promised != held:
                raise Damaged(f"{path.name} holds {held} bytes of data, its header promises "
                              f"{promised}")  # fmt: skip
            return np.fromfile(f, dtype=dtype, count=count).reshape(shape)
    except FileNotFoundError:
        raise Damaged(f"{path.name} is missing") from None
    except (OSError, ValueError, EOFError, SyntaxError) as err:
        raise Damaged(f"{path.name} is unreadable ({err})") from None


def write(folder: Path, arrays: dict) -> str | None:
    """Write an entry into a temporary sibling folder, then rename it into place; a damaged
    entry already there is renamed aside first and deleted. Returns None, or why it failed."""
    tmp = stale = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        for k in ARRAYS:
            np.save(tmp / f"{k}.npy", np.ascontiguousarray(arrays[k]))
        meta = {
            "class_names": list(arrays["class_names"]),
            "test_split": arrays["test_split"],
            "sizes": {s: int(arrays[f"y_{s}"].shape[0]) for s in ("train", "test")},
            "image_shape": [int(v) for v in arrays["x_train"].shape[1:]],
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        if folder.exists() or folder.is_symlink():
            stale = Path(tempfile.mkdtemp(prefix=".stale-", dir=folder.parent)) / "entry"
            try:
                os.replace(folder, stale)
            except FileNotFoundError:
                pass  # another process moved it first
        try:
            os.replace(tmp, folder)
        except OSError:
            if not folder.is_dir():  # not merely another process winning the race
                raise
        return None
    except OSError as err:
        return f"{type(err).__name__}: {err.strerror or err}"
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if stale is not None:
            shutil.rmtree(stale.parent, ignore_errors=True)
