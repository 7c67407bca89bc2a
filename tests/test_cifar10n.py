"""CIFAR-10N (Wei et al., ICLR 2022): reading the labels safely, fetching them, lining them up
with the images of cifar10 / cifar10-jpeg (subsets too), the cifar10n-* and noise-matrix
corruptions, and the alignment on the real archive."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from test_data_fetch import cli
from test_data_fetch import server as server  # local http.server at RETHINK_MIRROR
from test_data_readers import isolated, one_line_error  # noqa: F401

import rethink.data as D
from rethink import corruptions as C
from rethink.data import cifar10n as N
from rethink.data import download as F
from rethink.data.dataset import Dataset
from rethink.errors import RethinkError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
USER_CACHE = os.environ.get("RETHINK_CACHE")  # before the autouse `isolated` fixture hides it
USER_DATA = os.environ.get("RETHINK_DATA")  # likewise: `isolated` removes RETHINK_DATA


@pytest.fixture
def decode_cache(monkeypatch):
    """The ordinary decode cache, so the archive is decoded once per machine, not per test."""
    if USER_CACHE is None:
        monkeypatch.delenv("RETHINK_CACHE", raising=False)
    else:
        monkeypatch.setenv("RETHINK_CACHE", USER_CACHE)


def shared_dir() -> Path | None:
    """The folder holding cifar10n-labels.npz: RETHINK_DATA, else ../shared/data."""
    for folder in (USER_DATA, SHARED):
        if folder and (Path(folder) / N.NPZ_FILE).is_file():
            return Path(folder)
    return None


def jpeg_dir() -> Path | None:
    d = shared_dir()
    return d if d is not None and (d / "cifar10-jpeg.tar.gz").is_file() else None


needs_labels = pytest.mark.skipif(
    shared_dir() is None, reason="cifar10n-labels.npz is not here (RETHINK_DATA)"
)
needs_archive = pytest.mark.skipif(
    jpeg_dir() is None, reason="cifar10-jpeg.tar.gz and cifar10n-labels.npz are not here"
)


def fake_labels(seed: int = 0) -> dict[str, np.ndarray]:
    """Six label arrays shaped like CIFAR-10N's: 5,000 per clean class, noisy copies."""
    rng = np.random.default_rng(seed)
    clean = rng.permutation(np.repeat(np.arange(10), 5000))
    out = {"clean_label": clean}
    for i, key in enumerate(N.NOISES.values()):
        flip = rng.random(N.N_TRAIN) < 0.1 * (i + 1)
        out[key] = np.where(flip, rng.integers(0, 10, N.N_TRAIN), clean)
    return {k: v.astype(np.uint8) for k, v in out.items()}


def write_npz(path: Path, labels: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **labels)
    return path


def fake_dataset(name: str, labels: dict) -> Dataset:
    """A cifar10 / cifar10-jpeg Dataset whose image n encodes (in two bytes) the official
    index of the image it stands for, in that loader's order."""
    clean = labels["clean_label"].astype(np.int64)
    official = np.arange(N.N_TRAIN) if name == "cifar10" else np.argsort(clean, kind="stable")
    x = np.stack([official // 256, official % 256], 1).astype(np.uint8).reshape(-1, 1, 1, 2)
    prov = {"sizes": {"train": N.N_TRAIN, "test": 10}, "files": [{"official": True}]}
    return Dataset(name, torch.from_numpy(x), torch.from_numpy(clean[official]),
                   torch.zeros(10, 1, 1, 2, dtype=torch.uint8), torch.zeros(10, dtype=torch.int64),
                   10, tuple(map(str, range(10))), prov, name)  # fmt: skip


def encoded_index(ds: Dataset) -> np.ndarray:
    x = ds.x_train.reshape(len(ds.x_train), 2).numpy().astype(np.int64)
    return x[:, 0] * 256 + x[:, 1]


# ------------------------------------------------------------------------ reading safely
@pytest.fixture
def labels_npz(tmp_path):
    labels = fake_labels()
    return labels, write_npz(tmp_path / "data" / N.NPZ_FILE, labels)


def test_official_pt_and_npz_give_identical_arrays(tmp_path, labels_npz):
    labels, npz = labels_npz
    pt = N.write_official_pt(tmp_path / N.SOURCE_FILE, labels)
    names = torch.serialization.get_unsafe_globals_in_checkpoint(str(pt))
    assert "numpy.core.multiarray._reconstruct" in names  # numpy 1's names, as in 2021
    a, b = N.read_labels(npz), N.read_labels(pt)
    for k in N.KEYS:
        assert a[k].dtype == np.int64 and np.array_equal(a[k], b[k]), k
        assert np.array_equal(a[k], labels[k])


@needs_labels
def test_the_shared_npz_round_trips_through_the_official_pt_format(tmp_path):
    npz = shared_dir() / N.NPZ_FILE
    assert hashlib.sha256(npz.read_bytes()).hexdigest() == N.NPZ_SHA256  # its README
    pt = N.write_official_pt(tmp_path / N.SOURCE_FILE, N.read_labels(npz))
    a, b = N.read_labels(npz), N.read_labels(pt)
    assert all(np.array_equal(a[k], b[k]) for k in N.KEYS)
    assert a["clean_label"][:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]


def _pt_with_pickle(path: Path, payload: bytes) -> Path:
    buf = io.BytesIO()
    torch.save({"clean_label": np.zeros(2)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            data = payload if info.filename.endswith("data.pkl") else src.read(info.filename)
            out.writestr(info.filename, data)
    return path


@pytest.mark.parametrize("target", ["os system", "builtins eval", "numpy load"])
def test_a_pt_that_names_code_is_refused_and_runs_nothing(tmp_path, target):
    marker = tmp_path / "pwned"
    module, name = target.split()
    arg = f"open({str(marker)!r}, 'w')" if name == "eval" else f"touch {marker}"
    payload = f"c{module}\n{name}\n(S{arg!r}\ntR.".encode()
    if name == "load":
        payload = f"c{module}\n{name}\n(S{str(marker)!r}\ntR.".encode()
    with pytest.raises(pickle.UnpicklingError):  # the payload is live: plain pickle would run it
        _ArraysOnlyCheck(payload)
    pt = _pt_with_pickle(tmp_path / "evil.pt", payload)
    with pytest.raises(RethinkError) as err:
        N.read_labels(pt)
    one_line_error(err, "refusing", name)  # torch names builtins without their module
    assert not marker.exists()


def _ArraysOnlyCheck(payload: bytes) -> None:
    """Proves the payload names a non-array global (without running it)."""

    class Refuse(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError(f"{module}.{name}")

    Refuse(io.BytesIO(payload)).load()


@pytest.mark.parametrize(
    "change,words",
    [(lambda d: d.pop("worse_label"), ["lacks", "worse_label"]),
     (lambda d: d.update(aggre_label=d["aggre_label"][:100]), ["aggre_label", "50,000"]),
     (lambda d: d.update(random_label1=d["random_label1"] + 10), ["outside 0..9"]),
     (lambda d: d.update(clean_label=d["clean_label"].astype(np.float32)), ["integer"])],
)  # fmt: skip
def test_malformed_label_files_are_one_sentence(tmp_path, change, words):
    labels = fake_labels()
    change(labels)
    for path in (write_npz(tmp_path / "x.npz", labels),):
        with pytest.raises(RethinkError) as err:
            N.read_labels(path)
        one_line_error(err, *words)


def test_truncated_or_foreign_files_are_one_sentence(tmp_path, labels_npz):
    labels, npz = labels_npz
    pt = N.write_official_pt(tmp_path / "cut.pt", labels)
    pt.write_bytes(pt.read_bytes()[:5000])
    bad_npz = tmp_path / "cut.npz"
    bad_npz.write_bytes(npz.read_bytes()[:3000])
    text = tmp_path / "labels.txt"
    text.write_text("6 9 9 4")
    for path, word in ((pt, "cut.pt"), (bad_npz, "cut.npz"), (text, ".npz or a .pt")):
        with pytest.raises(RethinkError) as err:
            N.read_labels(path)
        one_line_error(err, word)


# ------------------------------------------------------------------------ where they are found
def test_labels_are_found_explicitly_then_rethink_data_then_the_cache(
    tmp_path, monkeypatch, labels_npz
):
    labels, npz = labels_npz
    with pytest.raises(RethinkError) as err:
        N.locate_labels()
    one_line_error(err, "rethink data fetch cifar10n", "RETHINK_DATA", N.NPZ_FILE)
    cached = N.write_official_pt(tmp_path / "cache" / "cifar10n" / N.SOURCE_FILE, labels)
    assert N.locate_labels() == cached
    monkeypatch.setenv("RETHINK_DATA", str(npz.parent))
    assert N.locate_labels() == npz
    other = write_npz(tmp_path / "elsewhere" / "mine.npz", fake_labels(1))
    assert N.locate_labels(other) == other and N.locate_labels(npz.parent) == npz
    with pytest.raises(RethinkError) as err:
        N.locate_labels(tmp_path / "nope.npz")
    one_line_error(err, "does not exist")


# ------------------------------------------------------------------------ fetch (local server)
def _publish_pt(monkeypatch, www: Path, labels) -> Path:
    pt = N.write_official_pt(www / "cifar10n" / N.SOURCE_FILE, labels)
    sha = hashlib.sha256(pt.read_bytes()).hexdigest()
    monkeypatch.setitem(
        F.SOURCES, "cifar10n", F.Source(("http://unused.invalid/",), {}, sha256={pt.name: sha})
    )
    return pt


@pytest.mark.parametrize("source", ["made-up", "shared"])
def test_fetch_cifar10n_verifies_caches_and_reads_like_the_npz(
    tmp_path, server, monkeypatch, capsys, source
):
    if source == "shared" and shared_dir() is None:
        pytest.skip("cifar10n-labels.npz is not here (RETHINK_DATA)")
    # the served .pt is written in the release format from the labels of the .npz
    labels = fake_labels(3) if source == "made-up" else N.read_labels(shared_dir() / N.NPZ_FILE)
    _publish_pt(monkeypatch, server, labels)
    assert cli("data", "fetch", "cifar10n", "--no-progress") == 0
    cached = tmp_path / "cache" / "cifar10n" / N.SOURCE_FILE
    assert cached.is_file() and "checksum ok" in capsys.readouterr().out
    assert N.locate_labels() == cached
    npz = write_npz(tmp_path / "npz" / N.NPZ_FILE, labels)
    got, want = N.load_labels(), N.read_labels(npz)
    assert all(np.array_equal(got[k], want[k]) for k in N.KEYS)
    (server / "cifar10n" / N.SOURCE_FILE).unlink()  # a second fetch keeps the verified file
    assert D.fetch("cifar10n", progress=False) == [cached]


def test_fetch_cifar10n_with_a_wrong_checksum_saves_nothing(tmp_path, server, monkeypatch):
    _publish_pt(monkeypatch, server, fake_labels())
    src = F.SOURCES["cifar10n"]
    monkeypatch.setitem(F.SOURCES, "cifar10n", F.Source(src.urls, {},
                        sha256={N.SOURCE_FILE: "0" * 64}))  # fmt: skip
    with pytest.raises(RethinkError) as err:
        D.fetch("cifar10n", progress=False)
    one_line_error(err, N.SOURCE_FILE)
    folder = tmp_path / "cache" / "cifar10n"
    assert not folder.exists() or not list(folder.iterdir())


def test_the_official_source_is_the_release_file():
    src = F.SOURCES["cifar10n"]
    assert src.urls == ("https://raw.githubusercontent.com/UCSC-REAL/cifar-10-100n/main/data/",)
    assert src.sha256 == {N.SOURCE_FILE: N.SOURCE_SHA256}
    assert N.SOURCE_SHA256 == "873e69c39cb9b5e97fb6bae2d60bb59b38a5cbc31d2b868f7903dcb2b9dd2310"


# ------------------------------------------------------------------------ alignment
@pytest.mark.parametrize("name", ["cifar10", "cifar10-jpeg"])
def test_every_example_of_every_subset_gets_its_own_images_labels(labels_npz, name):
    labels, npz = labels_npz
    full = fake_dataset(name, labels)
    assert np.array_equal(N.official_index(full, N.read_labels(npz)), encoded_index(full))
    for size, seed in ((50000, 0), (3000, 0), (3000, 1), (17, 5)):
        ds = D.subset(full, size, seed)
        idx = N.official_index(ds, N.read_labels(npz))
        assert np.array_equal(idx, encoded_index(ds))  # the image's own official index
        nested = D.subset(ds, max(size // 2, 10), 2)  # a subset of a subset keeps its indices
        assert np.array_equal(N.official_index(nested, N.read_labels(npz)), encoded_index(nested))
        for kind, key in N.NOISES.items():
            human = N.human_labels(ds, kind, npz)
            assert np.array_equal(human.numpy(), labels[key][encoded_index(ds)])


def test_datasets_that_do_not_line_up_are_one_sentence(tmp_path, labels_npz):
    labels, npz = labels_npz
    ds = fake_dataset("cifar10", labels)
    other = fake_labels(9)
    with pytest.raises(RethinkError) as err:
        N.official_index(ds, N.read_labels(write_npz(tmp_path / "o.npz", other)))
    one_line_error(err, "do not line up", "official order")
    with pytest.raises(RethinkError) as err:
        N.human_labels(D.load("digits"), "cifar10n-worst", npz)
    one_line_error(err, "digits", "cifar10, cifar10-jpeg")
    small = Dataset("cifar10", ds.x_train[:100], ds.y_train[:100], ds.x_test, ds.y_test, 10,
                    ds.class_names, {"sizes": {"train": 100}}, "c")  # fmt: skip
    with pytest.raises(RethinkError) as err:
        N.human_labels(small, "cifar10n-worst", npz)
    one_line_error(err, "100 training images", "50,000")
    # an image folder that is not the checksummed archive must be numbered 0000..4999.jpg
    folder = tmp_path / "jpeg" / "train" / "cat"
    folder.mkdir(parents=True)
    (folder / "0000.jpg").write_bytes(b"")
    jpeg = fake_dataset("cifar10-jpeg", labels)
    prov = dict(jpeg.provenance, files=[{"official": None}], path=str(tmp_path / "jpeg"))
    from dataclasses import replace

    with pytest.raises(RethinkError) as err:
        N.official_index(replace(jpeg, provenance=prov), N.read_labels(npz))
    one_line_error(err, "cannot be matched", "0000.jpg..4999.jpg")


def test_prepare_with_human_noise(labels_npz):
    labels, npz = labels_npz
    ds = D.subset(fake_dataset("cifar10-jpeg", labels), 4000, 3)
    p = D.prepare(ds, corruption="cifar10n-worst", labels_file=npz, preprocess="unit")
    want = labels["worse_label"][encoded_index(ds)]
    assert np.array_equal(p.y_train.numpy(), want) and p.y_train.dtype == torch.int64
    assert torch.equal(p.y_train_clean, ds.y_train)
    assert torch.equal(p.changed, p.y_train != ds.y_train) and p.changed.any()
    assert p.realized_fraction == pytest.approx(float(p.changed.float().mean()))
    assert torch.equal(p.y_test, ds.y_test)
    meta = json.loads(json.dumps(p.meta))
    assert meta["human_labels"]["array"] == "worse_label" and meta["human_labels"]["sha256"]
    assert meta["human_labels"]["full_set_rate"] == pytest.approx(
        float((labels["worse_label"] != labels["clean_label"]).mean())
    )
    again = D.prepare(ds, corruption="cifar10n-worst", labels_file=npz, seed=99)
    assert torch.equal(again.y_train, p.y_train)  # fixed labels: the seed plays no part
    with pytest.raises(RethinkError) as err:
        D.prepare(ds, corruption="cifar10n-aggre", labels_file=npz, corrupt_test=True)
    one_line_error(err, "training images only")
    with pytest.raises(RethinkError) as err:
        D.prepare(ds, corruption="cifar10n-aggre", corrupt_prob=0.3, labels_file=npz)
    one_line_error(err, "takes no probability")
    with pytest.raises(RethinkError) as err:
        D.prepare(D.load("digits"), corruption="cifar10n-random1", labels_file=npz)
    one_line_error(err, "digits")


def test_prepare_without_any_labels_file_is_one_sentence():
    ds = fake_dataset("cifar10", fake_labels())
    with pytest.raises(RethinkError) as err:
        D.prepare(ds, corruption="cifar10n-worst")
    one_line_error(err, "rethink data fetch cifar10n")


# ------------------------------------------------------------------------ noise-matrix
def _t_uniform(p: float, k: int) -> torch.Tensor:
    """partial-labels as a matrix: keep with 1 - p, else uniform over all k classes."""
    return (1 - p) * torch.eye(k, dtype=torch.float64) + p / k


def test_noise_matrix_draws_follow_the_rows_of_t():
    k, n = 4, 40000
    rows = [[0.7, 0.2, 0.1, 0.0], [0.0, 1.0, 0.0, 0.0], [0.25] * 4, [0.0, 0.0, 0.5, 0.5]]
    t = torch.tensor(rows, dtype=torch.float64)
    y = torch.arange(n) % k
    out, changed = C.noise_matrix(y, t, torch.Generator().manual_seed(0))
    assert torch.equal(changed, out != y)
    counts = np.zeros((k, k))
    np.add.at(counts, (y.numpy(), out.numpy()), 1)
    for i in range(k):
        support = t[i].numpy() > 0
        assert counts[i][~support].sum() == 0  # zero-probability classes are never drawn
        if support.sum() > 1:
            expected = t[i].numpy()[support] * counts[i].sum()
            assert stats.chisquare(counts[i][support], expected).pvalue > 1e-4
    again, _ = C.noise_matrix(y, t, torch.Generator().manual_seed(0))
    other, _ = C.noise_matrix(y, t, torch.Generator().manual_seed(1))
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_noise_matrix_through_apply_and_prepare(tmp_path):
    ds = D.load("digits")
    t = _t_uniform(0.5, 10)
    path = tmp_path / "t.npy"
    np.save(path, t.numpy())
    p = D.prepare(ds, corruption="noise-matrix", matrix=str(path), seed=4)
    q = D.prepare(ds, corruption="noise-matrix", matrix=t.numpy(), seed=4)
    assert torch.equal(p.y_train, q.y_train) and torch.equal(p.changed, p.y_train != ds.y_train)
    assert torch.equal(p.y_train_clean, ds.y_train) and torch.equal(p.y_test, ds.y_test)
    meta = p.meta["noise_matrix"]
    assert meta["expected_rate"] == pytest.approx(0.45) and meta["same_rate_prob"] == pytest.approx(
        0.5
    )
    both = D.prepare(ds, corruption="noise-matrix", matrix=str(path), seed=4, corrupt_test=True)
    assert torch.equal(both.y_train, p.y_train) and (both.y_test != ds.y_test).any()
    same = D.prepare(ds, corruption="noise-matrix", matrix=np.eye(10), seed=4)
    assert not same.changed.any()
    for kwargs, words in (({"corruption": "noise-matrix"}, ["needs a matrix"]),
                          ({"corruption": "partial-labels", "corrupt_prob": 0.2, "matrix": path},
                           ["takes no matrix"])):  # fmt: skip
        with pytest.raises(RethinkError) as err:
            D.prepare(ds, **kwargs)
        one_line_error(err, *words)


@pytest.mark.parametrize(
    "content,words",
    [(np.ones((3, 3)) / 3, ["3x3", "10 x 10"]),
     (np.full((10, 10), np.nan), ["non-finite"]),
     (np.eye(10) * 2 - np.roll(np.eye(10), 1, 1), ["negative"]),
     (np.eye(10) * 0.9, ["row 0", "sums to 0.9"]),
     (np.ones(10), ["has shape 10"])],
)  # fmt: skip
@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_bad_matrix_files_are_one_sentence_each(tmp_path, content, words, suffix):
    path = tmp_path / f"t{suffix}"
    if suffix == ".npy":
        np.save(path, content)
    else:
        np.savetxt(path, np.atleast_2d(content), delimiter=",")
        if content.ndim == 1:
            words = ["1x10"]
    with pytest.raises(RethinkError) as err:
        N.load_matrix(str(path), 10)
    one_line_error(err, *words)


def test_matrix_names_files_and_classes(tmp_path, labels_npz):
    labels, npz = labels_npz
    for text, word in ((str(tmp_path / "t.txt"), "neither"), (str(tmp_path / "no.npy"),
                       "does not exist"), ("cifar10n-best", "neither")):  # fmt: skip
        with pytest.raises(RethinkError) as err:
            N.load_matrix(text, 10, npz)
        one_line_error(err, word)
    with pytest.raises(RethinkError) as err:
        N.load_matrix("cifar10n-worst", 100, npz)
    one_line_error(err, "100-class")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RethinkError) as err:
        N.load_matrix(str(tmp_path / "bad.csv"), 2)
    one_line_error(err, "cannot be read")
    t, source = N.load_matrix("cifar10n-random1", 10, npz)
    counts = np.zeros((10, 10))
    np.add.at(counts, (labels["clean_label"], labels["random_label1"]), 1)
    np.testing.assert_allclose(t.numpy(), counts / counts.sum(1, keepdims=True))
    assert source == "cifar10n-random1"


def test_same_rate_prob_inverts_uniform_noise_and_refuses_too_much():
    for p in (0.0, 0.2, 0.4, 1.0):
        t = _t_uniform(p, 10)
        assert N.same_rate_prob(t) == pytest.approx(p)
        assert N.expected_rate(t) == pytest.approx(p * 9 / 10)
    skew = torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=torch.float64)
    assert N.expected_rate(skew, prior=[3, 1]) == pytest.approx(0.375)
    assert N.same_rate_prob(skew, prior=[3, 1]) == pytest.approx(0.75)
    with pytest.raises(RethinkError) as err:
        N.same_rate_prob(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    one_line_error(err, "more than uniform noise")


# ------------------------------------------------------------------------ the real labels
@needs_labels
def test_realized_noise_rates_on_the_full_training_set():
    labels = N.load_labels(shared_dir() / N.NPZ_FILE)
    rates = N.noise_rates(labels)
    assert rates == pytest.approx(
        {"cifar10n-aggre": 0.0901, "cifar10n-worst": 0.40208, "cifar10n-random1": 0.17234,
         "cifar10n-random2": 0.18122, "cifar10n-random3": 0.1764}, abs=1e-9
    )  # fmt: skip
    for kind, published in N.PUBLISHED_RATES.items():
        assert abs(rates[kind] - published) < 5e-5, kind
    t = N.transition_matrix("cifar10n-worst", shared_dir() / N.NPZ_FILE)
    assert N.expected_rate(t) == pytest.approx(rates["cifar10n-worst"])  # 5,000 per class
    assert N.same_rate_prob(t) == pytest.approx(0.40208 * 10 / 9)


@needs_archive
def test_real_archive_human_labels_and_same_rate_synthetic_noise(decode_cache):
    ds = D.load("cifar10-jpeg", data_dir=jpeg_dir())
    labels_file = jpeg_dir() / N.NPZ_FILE
    human = N.human_labels(ds, "cifar10n-worst", labels_file)
    assert int((human != ds.y_train).sum()) == 20104  # the README's count
    small = D.load("cifar10-jpeg", data_dir=jpeg_dir(), train_size=5000)
    p = D.prepare(small, corruption="cifar10n-worst", labels_file=labels_file)
    assert p.meta["human_labels"]["official"] is True
    assert torch.equal(p.y_train, human[small.train_index]) and p.changed.float().mean() > 0.35
    q = D.prepare(small, corruption="noise-matrix", matrix="cifar10n-worst",
                  labels_file=labels_file, seed=0, preprocess="unit")  # fmt: skip
    assert abs(q.realized_fraction - 0.40208) < 5 * (0.4 * 0.6 / 5000) ** 0.5


@needs_archive
def test_alignment_human_errors_follow_the_images(decode_cache, one_thread):
    """A probe trained on clean labels gives the human's wrong labels a higher log-probability
    on the images a human got wrong than the same wrong labels shuffled within each clean
    class; under a plausible wrong mapping (each class's order reversed) the gap vanishes."""
    gap = alignment_gap(n_fit=4000, n_eval=8000, shuffles=20)
    assert gap["right"]["z"] > 4 and gap["right"]["real"] > gap["right"]["max_shuffled"]
    assert abs(gap["reversed"]["z"]) < 3


def _softmax_regression(x, y, x_eval, l2: float) -> np.ndarray:
    """Multinomial logistic regression (L2-penalized mean cross-entropy) fitted with scipy's
    L-BFGS; log-probabilities (N_eval, 10) on x_eval."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    d, k = x.shape[1], 10
    onehot = np.eye(k)[y]

    def loss_grad(theta):
        w, b = theta[: d * k].reshape(d, k), theta[d * k :]
        logp = log_softmax(x @ w + b, axis=1)
        g = (np.exp(logp) - onehot) / len(x)
        loss = -(onehot * logp).sum() / len(x) + l2 * (w**2).sum()
        return loss, np.concatenate([(x.T @ g + 2 * l2 * w).ravel(), g.sum(0)])

    res = minimize(loss_grad, np.zeros(d * k + k), jac=True, method="L-BFGS-B",
                   options={"maxiter": 200})  # fmt: skip
    w, b = res.x[: d * k].reshape(d, k), res.x[d * k :]
    return log_softmax(x_eval @ w + b, axis=1)


def alignment_gap(n_fit: int, n_eval: int, shuffles: int, noise: str = "cifar10n-worst") -> dict:
    """The measurement of docs/data.md ("Checking the alignment"), on cifar10-jpeg."""
    ds = D.load("cifar10-jpeg", data_dir=jpeg_dir())
    labels = N.load_labels(jpeg_dir() / N.NPZ_FILE)
    right = N.official_index(ds, labels)
    clean = labels["clean_label"]
    reversed_ = np.argsort(clean, kind="stable").reshape(10, -1)[:, ::-1].reshape(-1)
    assert np.array_equal(clean[reversed_], clean[right])  # same labels: only the order differs
    pos = np.random.default_rng(0).permutation(len(ds.y_train))
    fit, ev = torch.from_numpy(pos[:n_fit]), pos[n_fit : n_fit + n_eval]

    def features(index) -> torch.Tensor:
        x = torch.nn.functional.avg_pool2d(ds.x_train[index].float() / 255, 4)  # 3 x 8 x 8
        return x.flatten(1)

    xf, xe = features(fit).double().numpy(), features(torch.from_numpy(ev)).double().numpy()
    mu, sd = xf.mean(0), xf.std(0) + 1e-6
    xf, xe = (xf - mu) / sd, (xe - mu) / sd
    yf, ye = ds.y_train[fit].numpy(), ds.y_train[torch.from_numpy(ev)].numpy()
    logp = _softmax_regression(xf, yf, xe, l2=1e-2)
    out = {"accuracy": float((logp.argmax(1) == ye).mean())}
    for name, mapping in (("right", right), ("reversed", reversed_)):
        human = labels[N.noise_key(noise)][mapping[ev]]
        wrong = np.flatnonzero(human != ye)
        real = float(logp[wrong, human[wrong]].mean())
        shuffled = []
        for s in range(shuffles):
            rng, h = np.random.default_rng(s), human.copy()
            for c in range(10):
                members = wrong[ye[wrong] == c]
                h[members] = human[rng.permutation(members)]
            shuffled.append(float(logp[wrong, h[wrong]].mean()))
        sh = np.asarray(shuffled)
        z = (real - sh.mean()) / sh.std()
        out[name] = {"n_wrong": len(wrong), "real": real, "shuffled": float(sh.mean()),
                     "max_shuffled": float(sh.max()), "z": float(z)}  # fmt: skip
    return out


def test_a_dataset_whose_train_index_does_not_fit_is_one_sentence(labels_npz):
    from dataclasses import replace

    labels, npz = labels_npz
    ds = D.subset(fake_dataset("cifar10", labels), 100, 0)
    for bad in (ds.train_index[:50], ds.train_index + N.N_TRAIN):
        with pytest.raises(RethinkError) as err:
            N.official_index(replace(ds, train_index=bad), N.read_labels(npz))
        one_line_error(err, "train_index")
