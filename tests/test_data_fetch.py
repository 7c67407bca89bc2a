"""`rethink data fetch` against a local http.server on 127.0.0.1 (never the internet):
verified downloads land atomically in the cache; bad ones leave nothing behind."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import pytest
from test_data_readers import isolated, one_line_error, write_mnist  # noqa: F401

import rethink.data as D
from rethink.cli import main
from rethink.data import download as F
from rethink.errors import RethinkError


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        if self.path.endswith("lies.gz"):  # promises more bytes than it sends
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serves tmp_path/www at RETHINK_MIRROR; yields the served folder."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("RETHINK_MIRROR", f"http://127.0.0.1:{httpd.server_address[1]}")
    yield www
    httpd.shutdown()
    httpd.server_close()


def cli(*args: str) -> int:
    """Run `rethink ARGS` in-process; the exit status."""
    try:
        main(list(args))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def publish(monkeypatch, name: str, folder) -> None:
    """Pretend the files in `folder` are the published ones (their md5s become official)."""
    sums = {p.name: md5(p) for p in sorted(folder.iterdir())}
    monkeypatch.setitem(F.SOURCES, name, F.Source(("http://unused.invalid/",), sums))


def cache_files(tmp_path, name):
    folder = tmp_path / "cache" / name
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetch_downloads_verifies_and_loads_from_the_cache(tmp_path, server, monkeypatch, capsys):
    arrays = write_mnist(server / "mnist")
    publish(monkeypatch, "mnist", server / "mnist")
    assert cli("data", "fetch", "mnist") == 0  # with the progress bar (on stderr)
    assert cache_files(tmp_path, "mnist") == sorted(F.SOURCES["mnist"].md5)
    assert "checksum ok" in capsys.readouterr().out
    ds = D.load("mnist")
    assert ds.provenance["source"] == "cache" and len(ds.y_train) == 60
    assert ds.x_train[5, 0].numpy().tolist() == arrays["train-images-idx3-ubyte"][5].tolist()
    assert all(r["official"] for r in D.verify("mnist"))
    assert cli("data", "verify", "mnist") == 0
    # a second fetch keeps the verified files (no download: the server could be gone)
    (server / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert len(D.fetch("mnist", progress=False)) == 4


def test_wrong_checksum_leaves_nothing_in_the_cache(tmp_path, server, monkeypatch):
    write_mnist(server / "mnist")
    publish(monkeypatch, "mnist", server / "mnist")
    victim = server / "mnist" / "train-images-idx3-ubyte.gz"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(RethinkError) as err:
        D.fetch("mnist", progress=False)
    one_line_error(err, "train-images-idx3-ubyte.gz", "published", "nothing was saved")
    assert "train-images-idx3-ubyte.gz" not in cache_files(tmp_path, "mnist")
    assert not [n for n in cache_files(tmp_path, "mnist") if n.startswith(".")]


def test_missing_file_on_the_server_is_one_line(tmp_path, server, monkeypatch, capsys):
    write_mnist(server / "mnist")
    publish(monkeypatch, "mnist", server / "mnist")
    (server / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    assert cli("data", "fetch", "mnist", "--no-progress") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: could not download t10k-images-idx3-ubyte.gz") and "\n" not in err
    assert "t10k-images-idx3-ubyte.gz" not in cache_files(tmp_path, "mnist")
    assert not [n for n in cache_files(tmp_path, "mnist") if n.startswith(".")]


def test_truncated_transfer_leaves_nothing(tmp_path, server, monkeypatch):
    (server / "cifar10").mkdir()
    monkeypatch.setitem(
        F.SOURCES, "cifar10", F.Source(("http://unused.invalid/",), {"lies.gz": "0" * 32})
    )
    with pytest.raises(RethinkError) as err:
        D.fetch("cifar10", progress=False)
    one_line_error(err, "lies.gz")
    assert not (tmp_path / "cache" / "cifar10").exists()


def test_unreachable_server_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("RETHINK_MIRROR", "http://127.0.0.1:9")  # discard port: refused
    with pytest.raises(RethinkError) as err:
        D.fetch("cifar100", progress=False)
    one_line_error(err, "cifar-100-python.tar.gz", "RETHINK_MIRROR")
    assert not (tmp_path / "cache" / "cifar100").exists()  # not even an empty folder


@pytest.mark.parametrize("name", ["digits", "mnist1d", "cifar10-jpeg"])
def test_nothing_to_fetch_for_packaged_generated_or_local_only(name):
    with pytest.raises(RethinkError) as err:
        D.fetch(name, progress=False)
    one_line_error(err, "nothing to fetch")


def test_official_sources_are_the_published_ones():
    """The URLs and MD5s are the published ones (spot checks against the projects' pages)."""
    assert F.SOURCES["cifar10"].md5 == {
        "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"
    }
    assert F.SOURCES["cifar100"].urls[0] == "https://www.cs.toronto.edu/~kriz/"
    assert (
        F.SOURCES["fashion-mnist"].md5["t10k-labels-idx1-ubyte.gz"]
        == "bb300cfdad3c16e7a12a480ee83cd310"
    )
    assert (
        F.SOURCES["mnist"].md5["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    )
