"""Checksum-verified downloads of the official archives, and the checksums of source files.

`download_all(name, folder)` downloads each file through a temporary file in the same folder,
checks the published MD5, then renames it into place in one step: the folder never holds a
half-written or unverified file. `file_record` is a source file's provenance (size, MD5,
whether it is the official file).

This module knows URLs and checksums only, not the dataset registry: `rethink.data.fetch`
and `rethink.data.verify` (in registry.py, which imports this module, never the reverse)
look a dataset up and call these functions. The base URL can be replaced by `RETHINK_MIRROR`
(files are then fetched from `$RETHINK_MIRROR/NAME/FILE`), e.g. a local http.server in tests.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rethink.errors import RethinkError


@dataclass(frozen=True)
class Source:
    """Official download locations (tried in order) and published MD5 checksums."""

    urls: tuple[str, ...]
    md5: dict[str, str]
    # MD5 of the decompressed content, for copies that were recompressed on the way (Debian's
    # dataset-fashion-mnist drops the file name from the gzip header; content is identical).
    content_md5: dict[str, str] | None = None
    sha256: dict[str, str] | None = None  # where a SHA-256 is published instead of an MD5


_JPEG_SHA256 = "1dee0fff144b2e2676d3d217f640072af1eb18bbc0c9d8c936fd4bc2441c805b"

SOURCES: dict[str, Source] = {
    "mnist": Source(
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://yann.lecun.com/exdb/mnist/"),
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion-mnist": Source(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        # Measured here on Debian's package (2020), whose archives differ only in the header.
        {
            "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
        },
    ),
    "cifar10": Source(
        ("https://www.cs.toronto.edu/~kriz/",),
        {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    ),
    "cifar100": Source(
        ("https://www.cs.toronto.edu/~kriz/",),
        {"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
    ),
    # Not downloadable (no official URL); the SHA-256 is the one in the README beside it.
    "cifar10-jpeg": Source(
        (),
        {},
        sha256={"cifar10-jpeg.tar.gz": _JPEG_SHA256},
    ),
    # CIFAR-10N's human labels, not a dataset (rethink.data.cifar10n reads them): the release
    # file of UCSC-REAL/cifar-10-100n; sha256 as in ../shared/data/README.md.
    "cifar10n": Source(
        ("https://raw.githubusercontent.com/UCSC-REAL/cifar-10-100n/main/data/",),
        {},
        sha256={
            "CIFAR-10_human.pt": "873e69c39cb9b5e97fb6bae2d60bb59b38a5cbc31d2b868f7903dcb2b9dd2310"
        },
    ),
}

_CHUNK = 1 << 20


def md5_of(path: Path, decompress: bool = False) -> str:
    """Hex MD5 of a file (of its gzip-decompressed content if `decompress`)."""
    import gzip

    h = hashlib.md5(usedforsecurity=False)
    opener = gzip.open if decompress else open
    with opener(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _check(name: str, path: Path) -> tuple[str, str | None, bool | None]:
    """(md5, what it was checked against, ok) for one file of `name`."""
    src = SOURCES.get(name)
    md5 = md5_of(path)
    if src is not None and src.sha256 and path.name in src.sha256:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        return md5, "published sha256", sha == src.sha256[path.name]
    fname = path.name if path.name.endswith(".gz") else path.name + ".gz"
    if src is None or fname not in src.md5:
        return md5, None, None
    if path.name.endswith(".gz") and md5 == src.md5[fname]:
        return md5, "published archive md5", True
    if src.content_md5 and fname in src.content_md5:
        try:
            content = md5_of(path, decompress=path.name.endswith(".gz"))
        except (OSError, EOFError):
            return md5, "published archive md5", False
        return md5, "content md5", content == src.content_md5[fname]
    return md5, "published archive md5", md5 == src.md5[fname]


def file_record(name: str, file: str) -> dict:
    """Provenance of one source file: path, bytes, md5 and whether it matches the official."""
    path = Path(file)
    if not path.is_file():
        return {"path": file}
    md5, against, ok = _check(name, path)
    return {"path": str(path), "bytes": path.stat().st_size, "md5": md5,
            "checked_against": against, "official": ok}  # fmt: skip


def _download(url: str, dest: Path, expected_md5: str, progress: bool, algo: str = "md5") -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.new(algo, usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with _progress(progress, dest.name, total) as advance:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    advance(len(chunk))
            if total is not None and out.tell() != total:
                raise RethinkError(
                    f"the download of {url} stopped after {out.tell()} of {total} bytes; "
                    "nothing was saved."
                )
        if h.hexdigest() != expected_md5:
            raise RethinkError(
                f"{url} has {algo} {h.hexdigest()}, not the published {expected_md5}; "
                "nothing was saved."
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class _progress:
    """A rich progress bar on stderr (or nothing); yields a function advance(n_bytes)."""

    def __init__(self, show: bool, label: str, total: int | None):
        self.show, self.label, self.total, self.bar = show, label, total, None

    def __enter__(self):
        if not self.show:
            return lambda n: None
        from rich.console import Console
        from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

        self.bar = Progress(*Progress.get_default_columns(), DownloadColumn(),
                            TransferSpeedColumn(), console=Console(stderr=True))  # fmt: skip
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()


def download_all(name: str, folder: Path, *, progress: bool = True, force: bool = False
                 ) -> list[Path]:  # fmt: skip
    """Download every file of `SOURCES[name]` into `folder`, each verified; their paths.

    Files already there with the right checksum are kept (unless `force`). A folder this call
    created is removed again if nothing could be saved in it.
    """
    src = SOURCES.get(name)
    if src is None or not src.urls:
        raise RethinkError(f"{name} has no official download; there is nothing to fetch.")
    mirror = os.environ.get("RETHINK_MIRROR")
    bases = (mirror.rstrip("/") + f"/{name}/",) if mirror else src.urls
    created = not folder.exists()
    try:
        return [
            _fetch_one(fname, digest, folder, bases, progress, force, algo)
            for fname, digest, algo in [(f, m, "md5") for f, m in src.md5.items()]
            + [(f, s, "sha256") for f, s in (src.sha256 or {}).items() if f not in src.md5]
        ]
    finally:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a failed first fetch leaves the cache as it was


def _fetch_one(fname: str, md5: str, folder: Path, bases, progress: bool, force: bool,
               algo: str = "md5") -> Path:  # fmt: skip
    dest = folder / fname
    if dest.is_file() and not force:
        kept = md5_of(dest) if algo == "md5" else hashlib.sha256(dest.read_bytes()).hexdigest()
        if kept == md5:
            return dest
    errors = []
    for base in bases:
        try:
            _download(base + fname, dest, md5, progress, algo)
            return dest
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
            errors.append(f"{base + fname}: {getattr(err, 'reason', err)}")
    raise RethinkError(
        f"could not download {fname} ({'; '.join(errors)}); check the network, or set "
        "RETHINK_MIRROR to a server holding NAME/FILE, or put the files in a folder "
        "and pass --data-dir."
    )
