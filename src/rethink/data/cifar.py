"""CIFAR-10 and CIFAR-100 in the official python-pickle format.

Read either from the extracted folder (`cifar-10-batches-py/`: data_batch_1..5, test_batch,
batches.meta; `cifar-100-python/`: train, test, meta, fine labels) or straight from the
official `.tar.gz` archive, without extracting it. The pickles are read with an unpickler
that only admits numpy arrays (and byte strings), so a hostile file cannot run code.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch

from rethink.errors import RethinkError

LAYOUT = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "archive": "cifar-10-python.tar.gz",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "labels": b"labels",
        "names": b"label_names",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "archive": "cifar-100-python.tar.gz",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "labels": b"fine_labels",
        "names": b"fine_label_names",
    },
}

# The largest official member is CIFAR-100's `train` (about 155 MB); a member claiming more
# is refused before it is read, so a hostile archive cannot make rethink read gigabytes.
_MAX_MEMBER_BYTES = 512 * 2**20

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol 2
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str) -> dict:
    try:
        obj = _ArraysOnly(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise RethinkError(f"{where} is truncated or not a CIFAR pickle ({err}).") from None
    if not isinstance(obj, dict):
        raise RethinkError(f"{where} is not a CIFAR pickle (no dictionary inside).")
    return obj


def _read_members(source: Path, folder: str, wanted: list[str]) -> dict[str, bytes]:
    """Bytes of each wanted file, from an extracted folder or a .tar.gz archive."""
    if source.is_dir():
        out = {}
        for name in wanted:
            path = source / name
            if not path.is_file():
                raise RethinkError(f"CIFAR folder {source} lacks the file {name}.")
            out[name] = path.read_bytes()
        return out
    out = {}
    try:
        with tarfile.open(source, "r:gz") as tar:
            for member in tar:
                base = member.name.split("/")
                if len(base) == 2 and base[0] == folder and base[1] in wanted and member.isfile():
                    if member.size > _MAX_MEMBER_BYTES:
                        raise RethinkError(
                            f"{source}:{member.name} claims {member.size:,} bytes, more than "
                            f"any CIFAR file ({_MAX_MEMBER_BYTES:,}); the archive is not CIFAR."
                        )
                    out[base[1]] = tar.extractfile(member).read()
    except FileNotFoundError:
        raise RethinkError(f"CIFAR archive {source} does not exist.") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise RethinkError(f"{source} is truncated or not a tar.gz archive ({err}).") from None
    missing = [n for n in wanted if n not in out]
    if missing:
        raise RethinkError(f"archive {source} lacks {folder}/{', '.join(missing)}.")
    return out


def _batch(obj: dict, key: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        data, labels = np.asarray(obj[b"data"]), np.asarray(obj[key])
    except KeyError as err:
        raise RethinkError(f"{where} is not a CIFAR batch (no {err.args[0]!r} entry).") from None
    except (ValueError, TypeError) as err:
        raise RethinkError(f"{where} is corrupt: its arrays cannot be read ({err}).") from None
    # The official batches hold uint8 pixels and integer labels; anything else would be
    # silently cast (floats truncated, wrapped), so it is refused.
    if data.dtype != np.uint8 or labels.dtype.kind not in "iu":
        raise RethinkError(
            f"{where} is corrupt: pixels of type {data.dtype} and labels of type "
            f"{labels.dtype} (expected uint8 pixels and integer labels)."
        )
    labels = labels.astype(np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise RethinkError(
            f"{where} is corrupt: data of shape {data.shape} with {len(labels)} labels "
            "(expected N x 3072 and N labels)."
        )
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar(name: str, source: Path) -> dict:
    """Read CIFAR-10 or CIFAR-100 from `source` (the extracted folder or the .tar.gz).

    Returns {x_train, x_test: uint8 (N, 3, 32, 32); y_train, y_test: int64; class_names}.
    """
    lay = LAYOUT[name]
    wanted = lay["train"] + lay["test"] + [lay["meta"]]
    raw = _read_members(source, lay["folder"], wanted)
    out: dict = {}
    for split in ("train", "test"):
        xs, ys = [], []
        for member in lay[split]:
            where = f"{source}:{member}" if not source.is_dir() else str(source / member)
            x, y = _batch(_unpickle(raw[member], where), lay["labels"], where)
            xs.append(x)
            ys.append(y)
        out[f"x_{split}"] = torch.from_numpy(np.concatenate(xs))
        out[f"y_{split}"] = torch.from_numpy(np.concatenate(ys))
    meta = _unpickle(raw[lay["meta"]], f"{source}:{lay['meta']}")
    names = meta.get(lay["names"])
    if not isinstance(names, list | tuple) or not all(isinstance(n, bytes | str) for n in names):
        raise RethinkError(f"{source}:{lay['meta']} lacks the class names (a list of strings).")
    out["class_names"] = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return out


def find_cifar(name: str, folder: Path) -> Path | None:
    """The extracted folder or the archive of `name` inside `folder`, if there."""
    lay = LAYOUT[name]
    extracted = folder / lay["folder"]
    if (extracted / lay["meta"]).is_file():
        return extracted
    if (folder / lay["meta"]).is_file() and (folder / lay["test"][0]).is_file():
        return folder  # pointed straight at the extracted folder
    archive = folder / lay["archive"]
    return archive if archive.is_file() else None
