"""IDX files (MNIST, Fashion-MNIST), gzip-compressed or raw.

Format: 2 zero bytes, a type byte (0x08 = uint8), a byte giving the number of dimensions d,
then d big-endian uint32 sizes, then the values in C order.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from rethink.errors import RethinkError

# Most bytes an IDX file may hold once decompressed: the largest real one (MNIST's training
# images) is 47 MB; 1 GiB leaves room for larger MNIST-style sets and bounds a gzip bomb.
MAX_BYTES = 2**30

# The four files of an MNIST-style dataset, by role; each may also end in ".gz".
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file of uint8 values (raw, or gzip when the name ends in .gz)."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)  # a gzip bomb stops here, not at MemoryError
        else:
            data = None if path.stat().st_size > MAX_BYTES else path.read_bytes()
    except FileNotFoundError:
        raise RethinkError(f"IDX file {path} does not exist.") from None
    except (OSError, EOFError, zlib.error) as err:
        raise RethinkError(f"{path} is not a readable gzip file ({err}).") from None
    if data is None or len(data) > MAX_BYTES:
        raise RethinkError(
            f"{path} holds more than {MAX_BYTES:,} bytes (decompressed), more than any MNIST-"
            "style IDX file; it is not one."
        )
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise RethinkError(f"{path} is not an IDX file (bad magic number).")
    if data[2] != 0x08:
        raise RethinkError(f"{path} holds IDX type 0x{data[2]:02x}; rethink reads uint8 (0x08).")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise RethinkError(f"{path} is truncated (incomplete IDX header).")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise RethinkError(
            f"{path} is truncated or corrupt: its header promises {expected} values "
            f"of shape {shape}, the file holds {len(data) - header}."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in `folder` (each .gz or raw), or None if any is missing."""
    found = {}
    for role, stem in IDX_FILES.items():
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            return None
    return found


def load_idx_folder(folder: Path) -> dict:
    """Read an MNIST-style folder: {x_train, y_train, x_test, y_test (torch), files}."""
    files = find_idx_files(folder)
    if files is None:
        missing = [s for s in IDX_FILES.values() if not (folder / s).exists()]
        raise RethinkError(f"{folder} lacks the IDX file(s) {', '.join(missing)}.")
    arrays = {role: read_idx(p) for role, p in files.items()}
    out = {}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise RethinkError(
                f"{files[split + '_images']} and its labels disagree: images of shape "
                f"{images.shape}, labels of shape {labels.shape}."
            )
        out[f"x_{split}"] = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, 28, 28)
        out[f"y_{split}"] = torch.from_numpy(labels.astype(np.int64))
    out["files"] = [str(p) for p in files.values()]
    return out
