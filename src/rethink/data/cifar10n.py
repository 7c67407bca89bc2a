"""CIFAR-10N: real human label noise on the CIFAR-10 training images (Wei et al., ICLR 2022).

Wei et al. re-annotated the 50,000 CIFAR-10 training images on Amazon Mechanical Turk, three
annotators per image, and released six label sets, each in the official (python-pickle)
training order: `clean_label` (the original labels), `aggre_label` (majority vote of the three),
`worse_label` (a wrong one of the three where any is wrong), `random_label1..3` (annotator 1,
2, 3). rethink names the noisy ones `cifar10n-aggre`, `cifar10n-worst`, `cifar10n-random1|2|3`.

Where the labels are read from, first hit wins:
1. an explicit file (or a folder holding one), `labels_file=`;
2. `--data-dir`, `$RETHINK_DATA`, `/usr/share/datasets/cifar10n/`, `CACHE/cifar10n/` (the
   usual search, `_paths.candidates("cifar10n")`), each for `cifar10n-labels.npz` (the six
   arrays as uint8, official order) or the official release file `CIFAR-10_human.pt`, which
   `rethink data fetch cifar10n` puts into the cache.
The .pt is a torch pickle of numpy arrays: it is read with `torch.load(weights_only=True)` and
only numpy's array, dtype and array-reconstruction globals allowed, so no code can run.

How the labels line up with a loaded dataset (`official_index`): `cifar10` is read in the
official order (data_batch_1..5), so training example i is official index i. The JPEG archive
numbers each class's images in the official order (`train/<class c>/NNNN.jpg` is the NNNN-th,
zero-based, official index whose label is c) and the image-folder reader yields them sorted by
class, then name; so its example j is the j-th entry of the stable argsort of `clean_label`.
Subsets carry the positions of their examples (`Dataset.train_index`). Each mapping is checked
before use: the clean labels must equal the dataset's labels example by example, and an image
folder that is not the checksummed archive must hold exactly the names 0000.jpg..4999.jpg per
class.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from rethink.data import _paths
from rethink.errors import RethinkError

NOISES: dict[str, str] = {
    "cifar10n-aggre": "aggre_label",
    "cifar10n-worst": "worse_label",
    "cifar10n-random1": "random_label1",
    "cifar10n-random2": "random_label2",
    "cifar10n-random3": "random_label3",
}
KEYS = ("clean_label",) + tuple(NOISES.values())
DATASETS = ("cifar10", "cifar10-jpeg")
N_TRAIN, NUM_CLASSES = 50_000, 10
NPZ_FILE = "cifar10n-labels.npz"
SOURCE_FILE = "CIFAR-10_human.pt"  # data/CIFAR-10_human.pt of UCSC-REAL/cifar-10-100n
SOURCE_SHA256 = "873e69c39cb9b5e97fb6bae2d60bb59b38a5cbc31d2b868f7903dcb2b9dd2310"
NPZ_SHA256 = "6024485a143efa682792c21d7f2adfdef5a374dce699bb2fcd4d62cd55cc4852"  # shared copy
SOURCE_URL = "https://raw.githubusercontent.com/UCSC-REAL/cifar-10-100n/main/data/"
# Noise rates (share of the 50,000 labels that differ from clean_label) published for
# CIFAR-10N (Wei et al. 2022) as issue 11 quotes them; random2 / random3 as measured on the
# release file (../shared/data/README.md).
PUBLISHED_RATES = {
    "cifar10n-aggre": 0.0901,
    "cifar10n-worst": 0.4021,
    "cifar10n-random1": 0.1723,
    "cifar10n-random2": 0.1812,
    "cifar10n-random3": 0.1764,
}
_HOW = (
    "run `rethink data fetch cifar10n`, or set RETHINK_DATA to the folder holding "
    f"{NPZ_FILE} or {SOURCE_FILE}"
)


# ------------------------------------------------------------------------------ finding
def locate_labels(
    labels_file: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
) -> Path:
    """The CIFAR-10N labels file to read (see the module docstring for the search order)."""
    if labels_file is not None:
        path = Path(labels_file).expanduser()
        if path.is_file():
            return path
        if path.is_dir():
            for folder in (path, path / "cifar10n"):
                for name in (NPZ_FILE, SOURCE_FILE):
                    if (folder / name).is_file():
                        return folder / name
            raise RethinkError(f"{path} holds neither {NPZ_FILE} nor {SOURCE_FILE}.")
        raise RethinkError(f"the CIFAR-10N labels file {path} does not exist.")
    for _, folder in _paths.candidates("cifar10n", data_dir):
        for name in (NPZ_FILE, SOURCE_FILE):
            if (folder / name).is_file():
                return folder / name
    raise RethinkError(
        f"the CIFAR-10N labels were not found (looked for {NPZ_FILE} or {SOURCE_FILE} in "
        f"{_paths.searched_text('cifar10n', data_dir)}); {_HOW}."
    )


# ------------------------------------------------------------------------------ reading
def _safe_globals() -> list:
    """The only globals a CIFAR-10_human.pt may name: numpy arrays and their dtypes, under
    numpy 1's module names (how the release was written) and numpy 2's."""
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's _reconstruct, public route
    return [
        np.ndarray,
        np.dtype,
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        # numpy 2 rebuilds a dtype through its class (numpy.dtypes.Int64DType, ...)
        *{type(np.dtype(t)) for t in ("u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8")},
    ]


def read_pt(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a CIFAR-10_human.pt, read with torch's weights-only unpickler and numpy's
    array globals only: a file naming any other global (code) is refused."""
    import pickle

    path = Path(path)
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        found = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"got <class '([\w.]+)'>", text)
        what = found.group(1) if found else "an object that is not a numpy array"
        raise RethinkError(
            f"{path} names {what}, which is not a numpy array or dtype; refusing to load it "
            "(a CIFAR-10_human.pt holds only numpy arrays)."
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError, TypeError, AttributeError,
            zipfile.BadZipFile) as err:  # fmt: skip
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RethinkError(f"{path} is truncated or not a CIFAR-10N .pt file ({first}).") from None
    if not isinstance(obj, dict):
        raise RethinkError(f"{path} does not hold a dictionary of label arrays.")
    return {
        str(k): v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for k, v in obj.items()
    }


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise RethinkError(f"{path} is truncated or not a CIFAR-10N .npz file ({err}).") from None


def _validate(arrays: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise RethinkError(f"{path} lacks the CIFAR-10N label array(s) {', '.join(missing)}.")
    out = {}
    for k in KEYS:
        a = np.asarray(arrays[k])
        if a.shape != (N_TRAIN,) or not np.issubdtype(a.dtype, np.integer):
            raise RethinkError(
                f"{path}: {k} must be {N_TRAIN:,} integer labels, got {a.dtype} {a.shape}."
            )
        if a.min() < 0 or a.max() >= NUM_CLASSES:
            raise RethinkError(f"{path}: {k} has labels outside 0..{NUM_CLASSES - 1}.")
        a = a.astype(np.int64)
        a.setflags(write=False)
        out[k] = a
    return out


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, _size: int, _mtime: int) -> tuple[dict[str, np.ndarray], str]:
    p = Path(path)
    raw = p.read_bytes()
    arrays = read_pt(p) if p.suffix == ".pt" else _read_npz(p)
    return _validate(arrays, p), hashlib.sha256(raw).hexdigest()


def read_labels(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The six label arrays of a .npz or .pt file, int64 (50000,), official training order."""
    return _read_with_hash(Path(path))[0]


def _read_with_hash(path: Path) -> tuple[dict[str, np.ndarray], str]:
    if path.suffix not in (".npz", ".pt"):
        raise RethinkError(f"a CIFAR-10N labels file is a .npz or a .pt, not {path.name}.")
    try:
        st = path.stat()
    except OSError:
        raise RethinkError(f"the CIFAR-10N labels file {path} does not exist.") from None
    return _read_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


def load_labels(
    labels_file: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
) -> dict[str, np.ndarray]:
    """Find and read the CIFAR-10N labels: {clean_label, aggre_label, worse_label,
    random_label1..3}, each int64 (50000,) in the official training order."""
    return read_labels(locate_labels(labels_file, data_dir))


def labels_record(
    labels_file: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
) -> dict:
    """Provenance of the labels that would be used: path, sha256, and whether that is the
    published checksum of the release .pt (or of the shared .npz made from it)."""
    path = locate_labels(labels_file, data_dir)
    _, sha = _read_with_hash(path)
    known = SOURCE_SHA256 if path.suffix == ".pt" else NPZ_SHA256
    return {"path": str(path), "sha256": sha, "official": sha == known}


def noise_key(noise: str) -> str:
    """The array name of a CIFAR-10N noise (cifar10n-worst -> worse_label)."""
    if noise not in NOISES:
        raise RethinkError(f"unknown CIFAR-10N noise {noise!r}; choose one of {', '.join(NOISES)}.")
    return NOISES[noise]


def noise_rates(labels: dict[str, np.ndarray]) -> dict[str, float]:
    """Share of the 50,000 training labels each noise changes (label != clean_label)."""
    clean = labels["clean_label"]
    return {n: float((labels[k] != clean).mean()) for n, k in NOISES.items()}


# ------------------------------------------------------------------------------ alignment
def official_index(ds, labels: dict[str, np.ndarray]) -> np.ndarray:
    """int64 (N_train,): the official CIFAR-10 training index of each training example of `ds`
    (a cifar10 or cifar10-jpeg Dataset, whole or a subset). Checked against the clean labels
    example by example; RethinkError if the dataset is another or the order cannot be trusted."""
    if ds.name not in DATASETS:
        raise RethinkError(
            f"the CIFAR-10N labels belong to the CIFAR-10 training images; dataset {ds.name} "
            f"is not one of {', '.join(DATASETS)}."
        )
    full = int(ds.provenance.get("sizes", {}).get("train", len(ds.y_train)))
    if full != N_TRAIN:
        raise RethinkError(
            f"{ds.name} has {full:,} training images here, not the {N_TRAIN:,} that CIFAR-10N "
            "relabels."
        )
    pos = ds.train_positions().numpy()
    if len(pos) != len(ds.y_train) or (len(pos) and not 0 <= pos.min() <= pos.max() < N_TRAIN):
        raise RethinkError(
            f"{ds.name}'s train_index does not give each of its {len(ds.y_train):,} training "
            f"examples a position in the {N_TRAIN:,} training images."
        )
    clean = labels["clean_label"]
    if ds.name == "cifar10":
        idx = pos
    else:
        _check_jpeg_names(ds)
        idx = np.argsort(clean, kind="stable")[pos]
    mismatch = np.flatnonzero(clean[idx] != ds.y_train.numpy())
    if len(mismatch):
        raise RethinkError(
            f"the CIFAR-10N clean labels do not line up with {ds.name}'s labels "
            f"({len(mismatch):,} of {len(idx):,} differ, first at training example "
            f"{int(mismatch[0])}); the data is not in the official order."
        )
    return idx


def _check_jpeg_names(ds) -> None:
    """An image folder that is not the checksummed archive must hold 0000..4999.jpg per class."""
    files = ds.provenance.get("files") or []
    if files and files[0].get("official") is True:
        return
    source = ds.provenance.get("path")
    if not source or not Path(source).exists():
        raise RethinkError(
            f"cannot check the file names of {ds.name} (source {source}); CIFAR-10N needs "
            "the official cifar10-jpeg.tar.gz or its extracted folder."
        )
    st = Path(source).stat()
    bad = _jpeg_names_problem(str(source), st.st_mtime_ns)
    if bad:
        raise RethinkError(
            f"{source} cannot be matched to the CIFAR-10N labels: {bad} (each class must "
            "hold train/<class>/0000.jpg..4999.jpg, numbered in the official order)."
        )


@functools.lru_cache(maxsize=4)
def _jpeg_names_problem(source: str, _mtime: int) -> str | None:
    path = Path(source)
    if path.is_dir():
        names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
    else:
        try:
            with tarfile.open(path, "r:*") as tar:
                names = [m.name for m in tar if m.isfile()]
        except (tarfile.TarError, OSError, EOFError) as err:
            return f"its member names cannot be read ({err})"
    per_class: dict[str, list[str]] = {}
    for name in names:
        parts = name.strip("/").split("/")
        if len(parts) >= 3 and parts[-3] == "train":
            per_class.setdefault(parts[-2], []).append(parts[-1])
    want = [f"{k:04d}.jpg" for k in range(N_TRAIN // NUM_CLASSES)]
    if len(per_class) != NUM_CLASSES:
        return f"it has {len(per_class)} training classes, not {NUM_CLASSES}"
    for cls, got in sorted(per_class.items()):
        if sorted(got) != want:
            return f"class {cls} holds other file names than 0000.jpg..4999.jpg"
    return None


def human_labels(
    ds,
    noise: str,
    labels_file: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
) -> torch.Tensor:
    """int64 (N_train,): the CIFAR-10N `noise` labels of the training examples of `ds`."""
    key = noise_key(noise)
    labels = load_labels(labels_file, data_dir)
    return torch.from_numpy(labels[key][official_index(ds, labels)].copy())


# ------------------------------------------------------------------------------ matrices
def transition_matrix(
    noise: str,
    labels_file: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
) -> torch.Tensor:
    """float64 (10, 10): the empirical class-transition matrix of a CIFAR-10N noise on the full
    training set, T[i, j] = #(clean i, noisy j) / #(clean i)."""
    labels = load_labels(labels_file, data_dir)
    return empirical_matrix(labels["clean_label"], labels[noise_key(noise)], NUM_CLASSES)


def empirical_matrix(clean, noisy, num_classes: int) -> torch.Tensor:
    """float64 (K, K): row i = distribution of `noisy` over the examples whose `clean` is i
    (a class with no examples keeps its label: row i = e_i)."""
    clean, noisy = np.asarray(clean, dtype=np.int64), np.asarray(noisy, dtype=np.int64)
    counts = np.zeros((num_classes, num_classes), dtype=np.float64)
    np.add.at(counts, (clean, noisy), 1.0)
    rows = counts.sum(1, keepdims=True)
    out = np.where(rows > 0, counts / np.maximum(rows, 1.0), np.eye(num_classes))
    return torch.from_numpy(out)


def validate_matrix(t, num_classes: int, where: str = "the noise matrix") -> torch.Tensor:
    """A K x K row-stochastic matrix as float64; one RethinkError sentence for each flaw."""
    a = np.asarray(t.numpy() if isinstance(t, torch.Tensor) else t)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise RethinkError(f"{where} must hold numbers, not {a.dtype}.")
    a = a.astype(np.float64)
    k = num_classes
    if a.shape != (k, k):
        raise RethinkError(
            f"{where} has shape {'x'.join(map(str, a.shape)) or 'scalar'}; it must be "
            f"{k} x {k} for a {k}-class dataset."
        )
    if not np.isfinite(a).all():
        raise RethinkError(f"{where} has non-finite entries (NaN or infinity).")
    if (a < 0).any():
        r, c = np.argwhere(a < 0)[0]
        raise RethinkError(f"{where} has a negative entry ({a[r, c]:g} in row {r}, column {c}).")
    sums = a.sum(1)
    off = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if len(off):
        raise RethinkError(
            f"row {int(off[0])} of {where} sums to {sums[off[0]]:.6g}, not 1; every row must "
            "be the distribution of the noisy label given the clean class."
        )
    return torch.from_numpy(a / sums[:, None])


def load_matrix(
    matrix,
    num_classes: int,
    labels_file: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
) -> tuple[torch.Tensor, str]:
    """(T float64 (K, K), what it is) for corruption.matrix: a CIFAR-10N noise name (its
    empirical matrix), a .npy / .csv file of a K x K row-stochastic matrix, or an array."""
    if isinstance(matrix, (np.ndarray, torch.Tensor, list)):
        return validate_matrix(matrix, num_classes), "array"
    text = str(matrix)
    if text in NOISES:
        if num_classes != NUM_CLASSES:
            raise RethinkError(
                f"the {text} matrix is {NUM_CLASSES} x {NUM_CLASSES}; it cannot corrupt a "
                f"{num_classes}-class dataset."
            )
        return transition_matrix(text, labels_file, data_dir), text
    path = Path(text).expanduser()
    if path.suffix.lower() not in (".npy", ".csv"):
        raise RethinkError(
            f"corruption.matrix {text!r} is neither a CIFAR-10N noise ({', '.join(NOISES)}) "
            "nor a .npy or .csv file."
        )
    if not path.is_file():
        raise RethinkError(f"the noise matrix file {path} does not exist.")
    try:
        if path.suffix.lower() == ".npy":
            a = np.load(path, allow_pickle=False)
        else:
            a = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except (OSError, ValueError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RethinkError(f"the noise matrix file {path} cannot be read ({first}).") from None
    return validate_matrix(a, num_classes, f"the noise matrix in {path}"), str(path)


def expected_rate(t, prior=None) -> float:
    """Expected share of changed labels under T: sum_i prior_i (1 - T[i, i]); `prior` is the
    clean class distribution (uniform if None)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    k = t.shape[0]
    q = torch.full((k,), 1.0 / k, dtype=torch.float64) if prior is None else _prior(prior, k)
    return float((q * (1.0 - t.diagonal())).sum())


def _prior(prior, k: int) -> torch.Tensor:
    q = torch.as_tensor(np.asarray(prior, dtype=np.float64))
    if q.shape != (k,) or (q < 0).any() or not torch.isfinite(q).all() or q.sum() <= 0:
        raise RethinkError(f"a class prior must be {k} non-negative numbers with a positive sum.")
    return q / q.sum()


def same_rate_prob(t, prior=None) -> float:
    """The partial-labels probability p whose uniform noise changes, in expectation, the same
    share of labels as T: a redrawn label stays the same with chance 1/K, so the expected
    changed share is p (K - 1) / K, and p = rate * K / (K - 1)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    k = t.shape[0]
    rate = expected_rate(t, prior)
    p = rate * k / (k - 1)
    if p > 1.0 + 1e-12:
        raise RethinkError(
            f"the matrix changes {rate:.2%} of labels, more than uniform noise can "
            f"({(k - 1) / k:.2%} at p = 1)."
        )
    return min(p, 1.0)


def class_prior(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """float64 (K,): the class frequencies of labels y."""
    counts = torch.bincount(y.to(torch.int64), minlength=num_classes).to(torch.float64)
    return counts / max(float(counts.sum()), 1.0)


def write_official_pt(path: str | os.PathLike, labels: dict[str, np.ndarray]) -> Path:
    """Write labels as the release does: torch.save of a dict of int64 numpy arrays, with
    numpy 1's module names in the pickle (as a file written in 2021 has). For tests and for
    re-creating the .pt from the .npz."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save({k: np.asarray(labels[k], dtype=np.int64) for k in KEYS}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):  # protocol 2: GLOBAL 'module\nname\n'
                data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
            out.writestr(info.filename, data)
    return path
