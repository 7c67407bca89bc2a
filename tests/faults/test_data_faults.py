"""Damaged data: decoded-image caches, image folders and archives, IDX and CIFAR files.

Every damaged cache is repaired once, with one line on stderr, and the data comes back equal
to a clean decode; every hostile folder or archive is refused in one sentence (or, for a
cache that cannot be written, read from memory with one line saying so)."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import rethink.data as D
from rethink.data import idx as idx_module
from rethink.data import imagefolder
from rethink.errors import RethinkError

from ._util import cli, one_sentence


def write_tree(root: Path, per_class: int = 2, size=(6, 6)) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("ant", "bee"):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                arr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i}.png")


def only_entry(cache: Path) -> Path:
    entries = [p for p in (cache / "decoded").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    return entries[0]


def npy_header_promising(shape, dtype="|u1") -> bytes:
    """A valid .npy 1.0 header promising `shape`, with no data behind it."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()


def _zero_bytes(e):
    (e / "x_train.npy").write_bytes(b"")


def _truncated(e):
    data = (e / "x_test.npy").read_bytes()
    (e / "x_test.npy").write_bytes(data[: len(data) // 2])


def _wrong_shape(e):
    np.save(e / "x_train.npy", np.zeros((4, 3, 5, 5), np.uint8))


def _wrong_dtype(e):
    np.save(e / "y_train.npy", np.zeros(4, np.float32))


def _huge_header(e):  # np.load would try to allocate 10**12 x 3 x 6 x 6 bytes
    (e / "x_train.npy").write_bytes(npy_header_promising((10**12, 3, 6, 6)))


def _labels_out_of_range(e):
    np.save(e / "y_test.npy", np.array([0, 1, 7, 1], np.int64))


def _meta(text):
    return lambda e: (e / "meta.json").write_text(text)


def _missing(name):
    return lambda e: (e / name).unlink()


def _entry_is_a_file(e):
    for p in e.iterdir():
        p.unlink()
    e.rmdir()
    e.write_text("not a folder")


def _empty_folder(e):
    for p in e.iterdir():
        p.unlink()


def _pickle_inside(e):  # an object array: np.load(allow_pickle=False) would refuse it
    np.save(e / "y_train.npy", np.array([{}, {}, {}, {}], dtype=object), allow_pickle=True)


DAMAGE = {
    "0-byte x_train.npy": _zero_bytes,
    "truncated x_test.npy": _truncated,
    "wrong shape": _wrong_shape,
    "wrong dtype": _wrong_dtype,
    "header promising 108 TB": _huge_header,
    "labels out of range": _labels_out_of_range,
    "pickled objects": _pickle_inside,
    "meta.json []": _meta("[]"),
    "meta.json {}": _meta("{}"),
    "meta.json garbage": _meta("{not json"),
    "meta.json wrong sizes": None,  # filled below
    "meta.json missing": _missing("meta.json"),
    "y_test.npy missing": _missing("y_test.npy"),
    "entry is a file": _entry_is_a_file,
    "entry is an empty folder": _empty_folder,
}


def _wrong_sizes(e):
    meta = json.loads((e / "meta.json").read_text())
    meta["sizes"]["train"] += 1
    (e / "meta.json").write_text(json.dumps(meta))


DAMAGE["meta.json wrong sizes"] = _wrong_sizes


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_cache_is_repaired_once_with_one_line(damage, tmp_path, capsys):
    write_tree(tmp_path / "toy")
    first = D.load_imagefolder(tmp_path / "toy")
    entry = only_entry(tmp_path / "cache")
    DAMAGE[damage](entry)
    capsys.readouterr()
    again = D.load_imagefolder(tmp_path / "toy")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is damaged" in err and str(entry) in err, err
    assert again["notes"]["cache_repaired"] and not again["notes"]["cache_hit"]
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert again[k].equal(first[k])
    third = D.load_imagefolder(tmp_path / "toy")  # replaced: a clean hit, silent
    assert third["notes"]["cache_hit"] and capsys.readouterr().err == ""
    assert only_entry(tmp_path / "cache") == entry
    assert not [p for p in (tmp_path / "cache" / "decoded").iterdir() if p.name[0] == "."]


def test_zero_byte_npy_through_the_cli_is_not_aborted(tmp_path):
    """It was: np.load raised EOFError, which click reports as a bare 'Aborted!'."""
    write_tree(tmp_path / "toy")
    args = ["data", "export", f"imagefolder:{tmp_path / 'toy'}", "--out", tmp_path / "a.npz"]
    assert cli(args)[0] == 0
    _zero_bytes(only_entry(tmp_path / "cache"))
    D.clear_cache()  # as a fresh process would: no in-memory copy
    code, _, err = cli(args)
    assert code == 0 and "Aborted" not in err and "is damaged" in err, err
    D.clear_cache()
    code, _, err = cli(args)
    assert code == 0 and err == ""


def test_cache_that_cannot_be_written_is_said_once_and_the_data_still_loads(tmp_path, capsys):
    write_tree(tmp_path / "toy")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "decoded").write_text("a file where the cache folder should be")
    out = D.load_imagefolder(tmp_path / "toy")
    err = capsys.readouterr().err
    assert out["x_train"].shape == (4, 3, 6, 6)
    assert err.count("\n") == 1 and "could not write the decoded-image cache" in err


# ------------------------------------------------------------------ hostile image folders
def _refused(source, *needles) -> str:
    with pytest.raises(RethinkError) as err:
        D.load(f"imagefolder:{source}")
    msg = str(err.value)
    assert "\n" not in msg and msg.endswith("."), msg
    for n in needles:
        assert n in msg, msg
    return msg


def test_dangling_symlink_is_refused_in_one_sentence(tmp_path):
    write_tree(tmp_path / "toy")
    os.symlink(tmp_path / "gone.png", tmp_path / "toy" / "train" / "ant" / "9.png")
    _refused(tmp_path / "toy", "broken symbolic link", "train/ant/9.png")


def test_symlink_leading_outside_the_folder_is_refused(tmp_path):
    write_tree(tmp_path / "toy")
    secret = tmp_path / "secret.png"
    (tmp_path / "toy" / "train" / "ant" / "0.png").rename(secret)
    os.symlink(secret, tmp_path / "toy" / "train" / "ant" / "0.png")
    _refused(tmp_path / "toy", "outside the folder", "train/ant/0.png")


def test_symlink_to_a_folder_is_refused(tmp_path):
    write_tree(tmp_path / "toy")
    os.symlink(tmp_path / "toy" / "train" / "ant", tmp_path / "toy" / "train" / "cat")
    _refused(tmp_path / "toy", "link to a folder", "train/cat")


def test_symlink_to_a_file_inside_the_folder_is_read(tmp_path):
    write_tree(tmp_path / "toy")
    os.symlink("0.png", tmp_path / "toy" / "train" / "ant" / "9.png")
    ds = D.load(f"imagefolder:{tmp_path / 'toy'}")
    assert len(ds.y_train) == 5 and ds.x_train[0].equal(ds.x_train[2])


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height; PIL reads only the header to learn the size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [9000, 100_000])  # over our bound; over PIL's own error too
def test_decompression_bomb_is_refused_from_its_header(side, tmp_path, capsys):
    write_tree(tmp_path / "toy")
    (tmp_path / "toy" / "train" / "bee" / "bomb.png").write_bytes(png_header_only(side, side))
    _refused(tmp_path / "toy", "bomb.png", f"{imagefolder.MAX_PIXELS:,} pixels")
    assert capsys.readouterr().err == ""  # no DecompressionBombWarning either


# --------------------------------------------------------------------- hostile archives
def tar_with(tmp_path: Path, extra: list[tarfile.TarInfo], data: bytes = b"") -> Path:
    write_tree(tmp_path / "toy")
    archive = tmp_path / "toy.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "toy", arcname="toy")
        for info in extra:
            tar.addfile(info, __import__("io").BytesIO(data) if info.isfile() else None)
    return archive


def _member(name: str, kind=tarfile.REGTYPE, linkname: str = "", size: int = 0):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, size
    return info


def test_traversal_member_is_refused_not_made_a_class(tmp_path):
    write_tree(tmp_path / "src")
    png = (tmp_path / "src" / "train" / "ant" / "0.png").read_bytes()
    archive = tar_with(tmp_path, [_member("../../x/train/a/img.png", size=len(png))], png)
    _refused(archive, "../../x/train/a/img.png", "climbs out")


def test_absolute_member_is_refused(tmp_path):
    png = b"\x89PNG"
    archive = tar_with(tmp_path, [_member("/abs/train/ant/1.png", size=len(png))], png)
    _refused(archive, "/abs/train/ant/1.png", "climbs out")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_link_members_are_refused(kind, tmp_path):
    archive = tar_with(tmp_path, [_member("toy/train/ant/7.png", kind, "/etc/passwd")])
    _refused(archive, "toy/train/ant/7.png", "link")


def test_device_member_is_refused(tmp_path):
    archive = tar_with(tmp_path, [_member("toy/train/ant/8.png", tarfile.CHRTYPE)])
    _refused(archive, "toy/train/ant/8.png", "not a regular file")


def test_bomb_inside_an_archive_is_refused(tmp_path):
    bomb = png_header_only(20_000, 20_000)
    archive = tar_with(tmp_path, [_member("toy/train/ant/b.png", size=len(bomb))], bomb)
    _refused(archive, "b.png", "pixels")


def test_hostile_archive_through_the_cli_is_one_sentence(tmp_path):
    png = b"\x89PNG"
    archive = tar_with(tmp_path, [_member("../../x/train/a/img.png", size=len(png))], png)
    res = cli(["data", "export", f"imagefolder:{archive}", "--out", tmp_path / "o.npz"])
    assert one_sentence(*res) is None, res
    assert not (tmp_path / "o.npz").exists()


# ----------------------------------------------------------------------- IDX and CIFAR
def test_idx_gzip_bomb_stops_at_the_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(idx_module, "MAX_BYTES", 1 << 20)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (4 << 20).to_bytes(4, "big")
                                   + b"\0" * (4 << 20)))  # fmt: skip
    with pytest.raises(RethinkError, match="more than 1,048,576 bytes"):
        idx_module.read_idx(path)


def _cifar_folder(tmp_path: Path, data, labels, names=None) -> Path:
    folder = tmp_path / "c" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    good = {b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8), b"labels": list(range(10))}
    for i in range(1, 6):
        pickle.dump(good, open(folder / f"data_batch_{i}", "wb"), protocol=2)
    pickle.dump({b"data": data, b"labels": labels}, open(folder / "test_batch", "wb"), protocol=2)
    names = names if names is not None else [f"c{i}".encode() for i in range(10)]
    pickle.dump({b"label_names": names}, open(folder / "batches.meta", "wb"), protocol=2)
    return tmp_path / "c"


@pytest.mark.parametrize(
    "data, labels, names, needle",
    [
        (np.zeros((10, 3072), np.float64) + 3.7, list(range(10)), None, "float64"),
        (b"not an array", list(range(10)), None, "test_batch"),
        (np.zeros((10, 3072), np.uint8), [0.5] * 10, None, "labels of type"),
        (np.zeros((10, 3072), np.uint8), list(range(10)), 7, "class names"),
        (np.zeros((10, 3072), np.uint8), list(range(10)), [1, 2], "class names"),
    ],
    ids=["float pixels", "bytes for data", "float labels", "names an int", "names ints"],
)
def test_cifar_pickles_of_the_wrong_types_are_one_sentence(data, labels, names, needle, tmp_path):
    folder = _cifar_folder(tmp_path, data, labels, names)
    with pytest.raises(RethinkError) as err:
        D.load("cifar10", data_dir=folder)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_cifar_archive_member_claiming_gigabytes_is_refused_unread(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(_member("cifar-10-batches-py/batches.meta", size=0))
    raw = bytearray(gzip.decompress(archive.read_bytes()))
    raw[124:136] = b"%011o\0" % (600 * 2**20)  # the header's size field: 600 MiB
    raw[148:156] = b"        "
    raw[148:155] = b"%06o\0" % sum(raw[:512])
    archive.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(RethinkError, match="claims 629,145,600 bytes"):
        D.load("cifar10", data_dir=tmp_path)
