"""Readers on files written in the exact official formats, and their failure modes:
IDX (gzip and raw), CIFAR-10/100 python pickles (folder and .tar.gz), image folders."""

from __future__ import annotations

import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import rethink.data as D
from rethink.cli import main
from rethink.data import _paths
from rethink.errors import RethinkError


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Nothing from the machine leaks in: empty cache, no RETHINK_DATA, no system data."""
    monkeypatch.setenv("RETHINK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RETHINK_DATA", raising=False)
    monkeypatch.delenv("RETHINK_MIRROR", raising=False)
    monkeypatch.setattr(_paths, "SYSTEM_DATA", tmp_path / "no-system")
    D.clear_cache()
    yield
    D.clear_cache()


# ----------------------------------------------------------------- official-format writers
def idx_bytes(arr: np.ndarray) -> bytes:
    """An IDX file: 0, 0, type 0x08 (uint8), ndim, big-endian uint32 sizes, data."""
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def write_mnist(folder: Path, n_train=60, n_test=20, gz=True, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in arrays.items():
        data = idx_bytes(arr)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return arrays


def cifar_batch(n: int, rng, key: bytes, classes: int) -> dict:
    return {
        b"batch_label": b"training batch 1 of 5",
        key: [int(v) for v in rng.integers(0, classes, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def write_cifar10(root: Path, per_batch=8, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump(cifar_batch(per_batch, rng, b"labels", 10), f, protocol=2)
    meta = {b"label_names": [n.encode() for n in D.registry.CIFAR10_NAMES],
            b"num_cases_per_batch": per_batch, b"num_vis": 3072}  # fmt: skip
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder


def write_cifar100(root: Path, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", 30), ("test", 10)):
        batch = cifar_batch(n, rng, b"fine_labels", 100)
        batch[b"coarse_labels"] = [int(v) for v in rng.integers(0, 20, n)]
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    meta = {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}  # fmt: skip
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder


def tar_gz(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def one_line_error(err: pytest.ExceptionInfo, *words: str) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg.endswith("."), msg
    for w in words:
        assert w in msg, (w, msg)
    return msg


# ------------------------------------------------------------------------------ IDX
@pytest.mark.parametrize("gz", [True, False])
def test_idx_mnist_loads_from_data_dir(tmp_path, gz):
    arrays = write_mnist(tmp_path / "d" / "mnist", gz=gz)
    ds = D.load("mnist", data_dir=tmp_path / "d")
    assert ds.x_train.shape == (60, 1, 28, 28) and ds.x_train.dtype == torch.uint8
    assert ds.y_train.dtype == torch.int64 and ds.x_test.shape == (20, 1, 28, 28)
    assert np.array_equal(ds.x_train[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(ds.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert ds.provenance["source"] == "--data-dir"
    assert all(f["official"] is False for f in ds.provenance["files"])  # not the real files
    assert D.load("mnist", data_dir=tmp_path / "d") is ds  # cached in-process


def test_idx_search_order_data_dir_then_env_then_system_then_cache(tmp_path, monkeypatch):
    for where in ("a", "env", "system", "cache"):
        write_mnist(tmp_path / where / "mnist", seed=ord(where[0]))
    monkeypatch.setenv("RETHINK_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(_paths, "SYSTEM_DATA", tmp_path / "system")
    monkeypatch.setenv("RETHINK_CACHE", str(tmp_path / "cache"))
    assert D.locate("mnist", tmp_path / "a")[0] == "--data-dir"
    assert D.locate("mnist")[0] == "RETHINK_DATA"
    monkeypatch.delenv("RETHINK_DATA")
    assert D.locate("mnist")[0] == "system"
    monkeypatch.setattr(_paths, "SYSTEM_DATA", tmp_path / "none")
    assert D.locate("mnist") == ("cache", tmp_path / "cache" / "mnist")


def test_idx_truncated_gzip_is_one_clear_error(tmp_path):
    write_mnist(tmp_path / "mnist")
    f = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-500])
    with pytest.raises(RethinkError) as err:
        D.load("mnist", data_dir=tmp_path)
    one_line_error(err, "train-images-idx3-ubyte.gz")


def test_idx_truncated_raw_file_is_one_clear_error(tmp_path):
    write_mnist(tmp_path / "mnist", gz=False)
    f = tmp_path / "mnist" / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-28])
    with pytest.raises(RethinkError) as err:
        D.load("mnist", data_dir=tmp_path)
    one_line_error(err, "truncated", "t10k-images-idx3-ubyte")


def test_idx_bad_magic_is_one_clear_error(tmp_path):
    write_mnist(tmp_path / "mnist", gz=False)
    (tmp_path / "mnist" / "train-labels-idx1-ubyte").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(RethinkError) as err:
        D.load("mnist", data_dir=tmp_path)
    one_line_error(err, "not an IDX file")


def test_idx_missing_file_names_it(tmp_path):
    write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(RethinkError) as err:
        D.load("mnist", data_dir=tmp_path)
    one_line_error(err, "t10k-labels-idx1-ubyte", "incomplete")


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(RethinkError) as err:
        D.load("cifar10", data_dir=tmp_path / "nowhere")
    one_line_error(err, "nowhere", "cache", "rethink data fetch cifar10")


def test_wrong_checksum_fails_verify_with_one_line(tmp_path, capsys):
    write_mnist(tmp_path / "mnist")
    records = D.verify("mnist", data_dir=tmp_path)
    assert len(records) == 4 and all(r["official"] is False for r in records)
    with pytest.raises(SystemExit) as code:
        main(["data", "verify", "mnist", "--data-dir", str(tmp_path)])
    assert code.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "published checksum" in err and "\n" not in err


# ----------------------------------------------------------------------------- CIFAR
def test_cifar10_folder_and_tarball_agree(tmp_path):
    folder = write_cifar10(tmp_path / "x")
    raw = pickle.loads((folder / "data_batch_2").read_bytes(), encoding="bytes")
    ds = D.load("cifar10", data_dir=tmp_path / "x")
    assert ds.x_train.shape == (40, 3, 32, 32) and ds.x_test.shape == (8, 3, 32, 32)
    assert ds.class_names[0] == "airplane" and ds.num_classes == 10
    # row-major 3072 = 3 planes of 32x32, in batch order
    assert np.array_equal(ds.x_train[8:16].reshape(8, -1).numpy(), raw[b"data"])
    assert ds.y_train[8:16].tolist() == raw[b"labels"]
    (tmp_path / "t").mkdir()
    tar_gz(folder, tmp_path / "t" / "cifar-10-python.tar.gz")
    from_tar = D.load("cifar10", data_dir=tmp_path / "t")
    assert str(from_tar.provenance["path"]).endswith("cifar-10-python.tar.gz")
    assert torch.equal(from_tar.x_train, ds.x_train) and torch.equal(from_tar.y_test, ds.y_test)


def test_cifar100_reads_fine_labels(tmp_path):
    folder = write_cifar100(tmp_path / "x")
    raw = pickle.loads((folder / "train").read_bytes(), encoding="bytes")
    ds = D.load("cifar100", data_dir=tmp_path / "x")
    assert ds.num_classes == 100 and len(ds.class_names) == 100
    assert ds.y_train.tolist() == raw[b"fine_labels"]


def test_cifar_truncated_tarball_is_one_clear_error(tmp_path):
    folder = write_cifar10(tmp_path / "x")
    (tmp_path / "t").mkdir()
    archive = tar_gz(folder, tmp_path / "t" / "cifar-10-python.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(RethinkError) as err:
        D.load("cifar10", data_dir=tmp_path / "t")
    one_line_error(err, "cifar-10-python.tar.gz")


def test_cifar_truncated_batch_is_one_clear_error(tmp_path):
    folder = write_cifar10(tmp_path / "x")
    f = folder / "data_batch_3"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(RethinkError) as err:
        D.load("cifar10", data_dir=tmp_path / "x")
    one_line_error(err, "data_batch_3")


def test_cifar_missing_batch_is_named(tmp_path):
    folder = write_cifar10(tmp_path / "x")
    (folder / "data_batch_5").unlink()
    with pytest.raises(RethinkError) as err:
        D.load("cifar10", data_dir=tmp_path / "x")
    one_line_error(err, "data_batch_5")


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    folder = write_cifar10(tmp_path / "x")

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(RethinkError) as err:
        D.load("cifar10", data_dir=tmp_path / "x")
    one_line_error(err, "test_batch")


# ----------------------------------------------------------------------- image folders
def write_image_tree(root: Path, sizes=((6, 6),), fmt="PNG", per_class=3) -> dict:
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = {}
    for split in ("train", "test"):
        for cls in ("cat", "ant", "bee"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(per_class):
                h, w = sizes[i % len(sizes)]
                arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i:03d}.{fmt.lower()}", format=fmt)
                pixels[(split, cls, i)] = arr
    return pixels


def test_imagefolder_from_tar_gz_decodes_once_then_hits_the_cache(tmp_path):
    pixels = write_image_tree(tmp_path / "tree" / "toy")
    archive = tar_gz(tmp_path / "tree" / "toy", tmp_path / "toy.tar.gz")
    first = D.load_imagefolder(archive)
    assert first["class_names"] == ("ant", "bee", "cat")  # sorted
    assert (
        first["x_train"].shape == (9, 3, 6, 6)
        and first["y_train"].tolist() == [0] * 3 + [1] * 3 + [2] * 3
    )
    # PNG is lossless: pixel-exact, in (class, file name) order
    assert np.array_equal(first["x_train"][0].permute(1, 2, 0).numpy(), pixels[("train", "ant", 0)])
    assert first["notes"]["cache_hit"] is False
    again = D.load_imagefolder(archive)
    assert again["notes"]["cache_hit"] is True and torch.equal(again["x_test"], first["x_test"])
    ds = D.load(f"imagefolder:{archive}")
    assert ds.num_classes == 3 and ds.x_test.shape == (9, 3, 6, 6)
    assert not list((tmp_path / "cache" / "decoded").glob(".partial-*"))


def test_imagefolder_mixed_sizes_need_a_size(tmp_path):
    write_image_tree(tmp_path / "toy", sizes=((6, 6), (9, 7)), fmt="JPEG")
    with pytest.raises(RethinkError) as err:
        D.load(f"imagefolder:{tmp_path / 'toy'}")
    one_line_error(err, "@64")
    ds = D.load(f"imagefolder:{tmp_path / 'toy'}@4")
    assert ds.x_train.shape == (9, 3, 4, 4)


@pytest.mark.parametrize("spec", ["imagefolder:", "imagefolder:/x@0", "imagefolder:/x@big"])
def test_imagefolder_bad_spec(spec):
    with pytest.raises(RethinkError):
        D.load(spec)


def test_imagefolder_corrupt_image_is_named(tmp_path):
    write_image_tree(tmp_path / "toy")
    (tmp_path / "toy" / "train" / "bee" / "001.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(RethinkError) as err:
        D.load_imagefolder(tmp_path / "toy")
    one_line_error(err, "001.png")
    assert not (tmp_path / "cache" / "decoded").exists() or not any(
        (tmp_path / "cache" / "decoded").iterdir()
    )


def test_imagefolder_truncated_archive_is_one_line_and_caches_nothing(tmp_path):
    write_image_tree(tmp_path / "tree" / "toy", per_class=30)
    archive = tar_gz(tmp_path / "tree" / "toy", tmp_path / "toy.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    with pytest.raises(RethinkError) as err:
        D.load(f"imagefolder:{archive}")
    one_line_error(err, "toy.tar.gz")
    decoded = tmp_path / "cache" / "decoded"
    assert not decoded.exists() or not any(decoded.iterdir())
