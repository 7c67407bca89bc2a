"""A general image-folder reader: `split/class/image` files in a folder, a .tar or a .tar.gz.

Splits are `train` and `test` (or, ImageNet-style, `val` / `validation`); classes are the
sorted names of the train split's class folders. Images are decoded once with Pillow,
converted to RGB, resized to `size` x `size` if given
(bilinear, after a centre crop to a square), and cached as uint8 .npy files under
`CACHE/decoded/<key>/`, where the key is made of the source's path, size in bytes and
modification time (for a folder: of every file in it) and the requested size.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

from rethink.data._paths import cache_dir
from rethink.errors import RethinkError

_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}
_TEST_SPLITS = ("test", "val", "validation")
_VERSION = 1  # bump when decoding changes, so old caches are not reused


def _entries_from_folder(root: Path):
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in _EXTS and path.is_file():
            yield path.relative_to(root).as_posix(), path.read_bytes


def _entries_from_tar(path: Path):
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.isfile() and Path(member.name).suffix.lower() in _EXTS:
                    data = tar.extractfile(member).read()
                    yield member.name, (lambda d=data: d)
    except FileNotFoundError:
        raise RethinkError(f"image archive {path} does not exist.") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise RethinkError(f"{path} is truncated or not a tar archive ({err}).") from None


def _split_class(name: str) -> tuple[str, str] | None:
    """(split, class) from '.../split/class/file', dropping any leading folders."""
    parts = name.strip("/").split("/")
    for i in range(len(parts) - 2):
        if parts[i] == "train" or parts[i] in _TEST_SPLITS:
            if i + 3 == len(parts):
                return parts[i], parts[i + 1]
    return None


def _decode(data: bytes, where: str, size: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size, size):
                w, h = img.size
                s = min(w, h)
                box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
                img = img.resize((size, size), Image.BILINEAR, box=box)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise RethinkError(f"image {where} cannot be decoded ({err}).") from None


def _decode_all(source: Path, size: int | None) -> dict:
    entries = _entries_from_folder(source) if source.is_dir() else _entries_from_tar(source)
    items: dict[str, list] = {}
    announced = False
    for count, (name, read) in enumerate(entries):
        sc = _split_class(name)
        if sc is None:
            continue
        if count == 2000 and not announced:
            print(
                f"rethink: decoding the images of {source} once; later loads use the cache.",
                file=sys.stderr,
            )
            announced = True
        items.setdefault(sc[0], []).append((sc[1], name, _decode(read(), name, size)))
    test_split = next((s for s in _TEST_SPLITS if s in items), None)
    if "train" not in items or test_split is None:
        raise RethinkError(
            f"{source} has no train/<class>/<image> and test/<class>/<image> (or val/) files."
        )
    classes = sorted({c for c, _, _ in items["train"]})
    index = {c: i for i, c in enumerate(classes)}
    out: dict = {"class_names": classes, "test_split": test_split}
    for split, key in (("train", "train"), (test_split, "test")):
        rows = sorted(items[split], key=lambda r: (index.get(r[0], -1), r[1]))
        unknown = [r[1] for r in rows if r[0] not in index]
        if unknown:
            raise RethinkError(f"{unknown[0]} is in a class that has no training images.")
        shapes = {r[2].shape for r in rows}
        if len(shapes) != 1:
            raise RethinkError(
                f"{source} holds images of {len(shapes)} different sizes; pass a size "
                "(e.g. imagefolder:PATH@64) to resize them all."
            )
        out[f"x_{key}"] = np.stack([r[2] for r in rows]).transpose(0, 3, 1, 2).copy()
        out[f"y_{key}"] = np.asarray([index[r[0]] for r in rows], dtype=np.int64)
    return out


def _key(source: Path, size: int | None) -> str:
    h = hashlib.sha256(f"v{_VERSION}|{source.resolve()}|{size}".encode())
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            st = path.stat()
            h.update(f"{path.relative_to(source)}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        st = source.stat()
        h.update(f"{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def load_imagefolder(path: str | os.PathLike, size: int | None = None, cache: bool = True) -> dict:
    """Read an image folder or archive; returns {x_train, y_train, x_test, y_test (torch),
    class_names, files, notes}. x is uint8 (N, 3, H, W); decoded once, then read from cache."""
    source = Path(path).expanduser()
    if not source.exists():
        raise RethinkError(f"image folder or archive {source} does not exist.")
    if size is not None and size < 1:
        raise RethinkError(f"an image size must be a positive number of pixels, got {size}.")
    key = _key(source, size)
    folder = cache_dir() / "decoded" / key
    arrays = _read_cache(folder) if cache else None
    cached = arrays is not None
    if arrays is None:
        arrays = _decode_all(source, size)
        if cache:
            _write_cache(folder, arrays)
    out = {k: torch.from_numpy(arrays[k]) for k in ("x_train", "y_train", "x_test", "y_test")}
    out["class_names"] = tuple(arrays["class_names"])
    out["files"] = [str(source)]
    out["notes"] = {
        "decode_cache": str(folder) if cache else None,
        "cache_hit": cached,
        "size": size,
        "test_split": arrays["test_split"],
    }
    return out


def _read_cache(folder: Path) -> dict | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {
            k: np.load(folder / f"{k}.npy") for k in ("x_train", "y_train", "x_test", "y_test")
        }
    except (OSError, ValueError):
        return None  # absent or damaged: decode again
    return dict(arrays, **meta)


def _write_cache(folder: Path, arrays: dict) -> None:
    """Write into a temporary sibling folder, then rename it into place in one step."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        for k in ("x_train", "y_train", "x_test", "y_test"):
            np.save(tmp / f"{k}.npy", arrays[k])
        meta = {"class_names": list(arrays["class_names"]), "test_split": arrays["test_split"]}
        (tmp / "meta.json").write_text(json.dumps(meta))
        os.replace(tmp, folder)
    except OSError:
        pass  # another process won the race, or the disk is full: the data is in memory
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
