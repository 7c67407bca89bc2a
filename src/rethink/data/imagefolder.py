"""A general image-folder reader: `split/class/image` files in a folder, a .tar or a .tar.gz.

Splits are `train` and `test` (or, ImageNet-style, `val` / `validation`); classes are the
sorted names of the train split's class folders. Images are decoded once with Pillow,
converted to RGB, resized to `size` x `size` if given
(bilinear, after a centre crop to a square), and cached as uint8 .npy files under
`CACHE/decoded/<key>/`, where the key is made of the source's path, size in bytes and
modification time (for a folder: of every image file in it) and the requested size. A cache
entry is validated on every load; a damaged one is decoded again and replaced.

What is refused, one sentence each: in a folder, broken symbolic links, links that lead
outside it and links to folders (links to files inside it are read); in an archive, members
with absolute names or `..` components and link or device members with an image name; any
image over MAX_PIXELS pixels (checked from its header, before it is decoded).
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch

from rethink.data import _decoded_cache
from rethink.data._paths import cache_dir
from rethink.errors import RethinkError

_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}
_TEST_SPLITS = ("test", "val", "validation")
_VERSION = 2  # bump when decoding or the cache layout changes, so old entries are not reused
# Most pixels one image may have (PIL warns at ~89 M and refuses at ~179 M): 64 Mi pixels is
# 192 MiB decoded as RGB, far beyond any training image, and bounds what one file can cost.
MAX_PIXELS = 64 * 2**20


def _folder_files(root: Path) -> list[tuple[str, Path]]:
    """(name relative to root, path to read) of every image file, in name order.

    Walks without following links. A symbolic link to a file inside the folder is read like
    the file; a broken link, a link that leads outside the folder and a link to a folder are
    refused, one sentence each (rethink reads only what is inside the folder it was given).
    """
    root = root.resolve()
    found = []
    for top, dirs, files in os.walk(root, onerror=_walk_error):
        here = Path(top)
        for name in sorted(dirs):
            if (here / name).is_symlink():
                rel = (here / name).relative_to(root).as_posix()
                raise RethinkError(
                    f"image folder {root} holds a symbolic link to a folder, {rel}; rethink "
                    "does not follow folder links (replace it by the folder itself)."
                )
        for name in files:
            path = here / name
            if path.suffix.lower() not in _EXTS:
                continue
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                target = path.resolve()
                if not target.exists():
                    raise RethinkError(
                        f"image folder {root} holds a broken symbolic link, {rel} (its target "
                        f"{target} does not exist); remove the link or restore its target."
                    )
                if not target.is_relative_to(root):
                    raise RethinkError(
                        f"image folder {root} holds a symbolic link, {rel}, that leads outside "
                        f"the folder (to {target}); rethink reads only files inside the folder."
                    )
            if path.is_file():
                found.append((rel, path))
    return sorted(found)


def _walk_error(err: OSError) -> None:
    raise RethinkError(f"cannot read the image folder {err.filename} ({err.strerror}).")


def _entries_from_folder(files: list[tuple[str, Path]]):
    for rel, path in files:
        yield rel, path.read_bytes


def _entries_from_tar(path: Path):
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if Path(member.name).suffix.lower() not in _EXTS or member.isdir():
                    continue
                _check_member(path, member)
                if member.isfile():
                    data = tar.extractfile(member).read()
                    yield member.name, (lambda d=data: d)
    except FileNotFoundError:
        raise RethinkError(f"image archive {path} does not exist.") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise RethinkError(f"{path} is truncated or not a tar archive ({err}).") from None


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Refuse an image member that names a place outside the archive, or is not a file."""
    parts = member.name.replace("\\", "/").split("/")
    if member.name.startswith("/") or ".." in parts:
        raise RethinkError(
            f"image archive {archive} holds a member named {member.name!r}, which climbs out "
            "of the archive (an absolute name or '..'); rethink refuses such archives."
        )
    if member.issym() or member.islnk():
        raise RethinkError(
            f"image archive {archive} holds a link, {member.name} -> {member.linkname}; "
            "rethink reads only regular image files from archives."
        )
    if not member.isfile():
        raise RethinkError(
            f"image archive {archive} holds {member.name}, which is not a regular file; "
            "rethink reads only regular image files from archives."
        )


def _split_class(name: str) -> tuple[str, str] | None:
    """(split, class) from '.../split/class/file', dropping any leading folders."""
    parts = name.strip("/").split("/")
    for i in range(len(parts) - 2):
        if parts[i] == "train" or parts[i] in _TEST_SPLITS:
            if i + 3 == len(parts):
                return parts[i], parts[i + 1]
    return None


def _decode(data: bytes, where: str, size: int | None) -> np.ndarray:
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Our own bound (below) is tighter than PIL's warning threshold; PIL's error
            # (twice its threshold) still fires inside open() and is caught below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise RethinkError(_too_large(where, w, h))
                img = img.convert("RGB")
                if size is not None and img.size != (size, size):
                    s = min(w, h)
                    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
                    img = img.resize((size, size), Image.BILINEAR, box=box)
                return np.asarray(img, dtype=np.uint8)
    except Image.DecompressionBombError as err:
        dims = [int(t) for t in str(err).split() if t.isdigit()][:1]
        raise RethinkError(_too_large(where, None, None, dims[0] if dims else None)) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise RethinkError(f"image {where} cannot be decoded ({err}).") from None


def _too_large(where: str, w: int | None, h: int | None, pixels: int | None = None) -> str:
    dims = f"{w} x {h} pixels" if w is not None else f"{pixels or 'too many'} pixels"
    return (
        f"image {where} is {dims}, over rethink's bound of {MAX_PIXELS:,} pixels per image "
        "(a decompression bomb, or an image far larger than a training image); remove it."
    )


def _decode_all(source: Path, size: int | None, files: list | None) -> dict:
    entries = _entries_from_folder(files) if files is not None else _entries_from_tar(source)
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
    shapes = {r[2].shape for split in ("train", test_split) for r in items[split]}
    if len(shapes) != 1:
        raise RethinkError(
            f"{source} holds images of {len(shapes)} different sizes; pass a size "
            "(e.g. imagefolder:PATH@64) to resize them all."
        )
    for split, key in (("train", "train"), (test_split, "test")):
        rows = sorted(items[split], key=lambda r: (index.get(r[0], -1), r[1]))
        unknown = [r[1] for r in rows if r[0] not in index]
        if unknown:
            raise RethinkError(f"{unknown[0]} is in a class that has no training images.")
        out[f"x_{key}"] = np.stack([r[2] for r in rows]).transpose(0, 3, 1, 2).copy()
        out[f"y_{key}"] = np.asarray([index[r[0]] for r in rows], dtype=np.int64)
    return out


def _key(source: Path, size: int | None, files: list | None) -> str:
    h = hashlib.sha256(f"v{_VERSION}|{source.resolve()}|{size}".encode())
    if files is not None:
        for rel, path in files:
            st = path.stat()
            h.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        st = source.stat()
        h.update(f"{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def load_imagefolder(path: str | os.PathLike, size: int | None = None, cache: bool = True) -> dict:
    """Read an image folder or archive; returns {x_train, y_train, x_test, y_test (torch),
    class_names, files, notes}. x is uint8 (N, 3, H, W); decoded once, then read from cache.

    A damaged cache entry is decoded again and replaced (said in one line on stderr)."""
    source = Path(path).expanduser()
    if not source.exists():
        raise RethinkError(f"image folder or archive {source} does not exist.")
    if size is not None and size < 1:
        raise RethinkError(f"an image size must be a positive number of pixels, got {size}.")
    files = _folder_files(source) if source.is_dir() else None
    folder = cache_dir() / "decoded" / _key(source, size, files)
    arrays, damage = _decoded_cache.read(folder, _TEST_SPLITS) if cache else (None, None)
    cached = arrays is not None
    if damage is not None:
        print(
            f"rethink: the decoded-image cache {folder} is damaged ({damage}); decoding "
            f"{source} again and replacing it.",
            file=sys.stderr,
        )
    if arrays is None:
        arrays = _decode_all(source, size, files)
        if cache:
            failed = _decoded_cache.write(folder, arrays)
            if failed is not None:
                print(
                    f"rethink: could not write the decoded-image cache {folder} ({failed}); "
                    "using the decoded images from memory.",
                    file=sys.stderr,
                )
    out = {k: torch.from_numpy(arrays[k]) for k in ("x_train", "y_train", "x_test", "y_test")}
    out["class_names"] = tuple(arrays["class_names"])
    out["files"] = [str(source)]
    out["notes"] = {
        "decode_cache": str(folder) if cache else None,
        "cache_hit": cached,
        "cache_repaired": damage is not None,
        "size": size,
        "test_split": arrays["test_split"],
    }
    return out
