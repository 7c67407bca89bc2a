"""Users' own models and datasets: module:function references and entry points, in
models.build, data.load, `rethink run`, `rethink models` and a two-process sweep; the
one-sentence errors; source digests; the bounded dataset cache."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import rethink.data as D
from rethink import models, plugins
from rethink.cli import main
from rethink.data import registry
from rethink.errors import RethinkError

DOC = Path(__file__).parents[1] / "docs" / "plugins.md"


def doc_example() -> str:
    """The first python code block of docs/plugins.md: the 15-line example."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return blocks[0]


@pytest.fixture
def isolated_imports(monkeypatch, tmp_path):
    """sys.path as it was after the test (resolve may add the cwd), and the modules the test
    wrote under tmp_path forgotten (only those: re-importing others can break them)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    registry.clear_cache()
    yield
    for name, mod in list(sys.modules.items()):
        if str(getattr(mod, "__file__", None) or "").startswith(str(tmp_path)):
            sys.modules.pop(name, None)
    registry.clear_cache()


@pytest.fixture
def example(tmp_path, monkeypatch, isolated_imports):
    """The docs example saved as myplugins.py in a folder that is the cwd, not on sys.path."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "myplugins.py").write_text(doc_example())
    monkeypatch.chdir(folder)
    sys.path[:] = [p for p in sys.path if p not in ("", str(folder))]
    return folder


def one_sentence(err: pytest.ExceptionInfo, *parts: str) -> str:
    text = str(err.value)
    assert "\n" not in text and text.endswith("."), text
    for part in parts:
        assert part in text, (part, text)
    return text


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    sys.modules.pop(name, None)
    return path


def test_docs_example_is_short_and_builds_and_loads(example):
    code = doc_example()
    assert len(code.strip().splitlines()) <= 17  # "a 15-line example" (blank lines aside)
    assert str(example) not in sys.path
    net = models.build("myplugins:make_wide_mlp", (1, 8, 8), 2, seed=0)
    assert str(example) in sys.path  # found in the current folder, as documented
    assert models.count_params(net) == 64 * 2048 + 2048 + 2048 * 2 + 2
    again = models.build("myplugins:make_wide_mlp", (1, 8, 8), 2, seed=0)
    other = models.build("myplugins:make_wide_mlp", (1, 8, 8), 2, seed=1)
    first = next(net.parameters())
    assert torch.equal(first, next(again.parameters()))  # the seed decides the init
    assert not torch.equal(first, next(other.parameters()))
    assert models.default_lr("myplugins:make_wide_mlp") == 0.01

    ds = D.load("myplugins:two_blobs", train_size=200)
    assert ds.name == "myplugins:two_blobs" and ds.input_shape == (1, 8, 8)
    assert len(ds.y_train) == 200 and len(ds.y_test) == 100 and ds.num_classes == 2
    assert ds.y_train.bincount().tolist() == [100, 100]  # the stratified subset
    assert D.load("myplugins:two_blobs", train_size=200) is ds
    fn = sys.modules["myplugins"].two_blobs
    want = hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()
    info = ds.provenance["plugin"]
    assert info["ref"] == "myplugins:two_blobs" and info["source_sha256"] == want
    assert info["hashed"] == "function source" and info["file"].endswith("myplugins.py")
    prep = D.prepare(ds, corruption="random-labels", seed=0)
    assert prep.num_classes == 2


def test_is_ref():
    for ref in ("a:b", "pkg.mod:make", "pkg.mod:Zoo.wide", "_x:y_1"):
        assert plugins.is_ref(ref), ref
    for name in ("mlp-1x512", "imagefolder:/data/x", "imagefolder:rel", "a:", ":b", "a/b:c",
                 "a:b:c", "a-b:c", "", None, 3):  # fmt: skip
        assert not plugins.is_ref(name), name


_BAD = """
    import torch
    from torch import nn
    from rethink.data import from_arrays

    NOT_A_FUNCTION = 3
    def sig(x):
        return nn.Linear(1, 1)
    def not_module(input_shape, num_classes, dropout):
        return [1, 2]
    def wrong_logits(input_shape, num_classes, dropout):
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes + 1))
    def raises(input_shape, num_classes, dropout):
        raise ValueError("no GPU\\nhere")
    def data_sig(a, b):
        return None
    def data_none():
        return {"x": 1}
    def data_float():
        d = from_arrays(torch.zeros(4, 2, 2, dtype=torch.int64), torch.tensor([0, 1, 0, 1]),
                        torch.zeros(2, 2, 2, dtype=torch.int64), torch.tensor([0, 1]))
        import dataclasses
        return dataclasses.replace(d, x_train=d.x_train.float())
    def data_labels():
        d = from_arrays(torch.zeros(4, 2, 2, dtype=torch.int64), torch.tensor([0, 1, 0, 1]),
                        torch.zeros(2, 2, 2, dtype=torch.int64), torch.tensor([0, 1]))
        import dataclasses
        return dataclasses.replace(d, y_test=torch.tensor([0, 7]))
"""


@pytest.mark.parametrize(
    "kind, ref, parts",
    [
        ("model", "nosuchmod_x:f", ["cannot import module 'nosuchmod_x'", "PYTHONPATH"]),
        ("model", "brokenmod:f", ["importing module 'brokenmod'", "ZeroDivisionError"]),
        ("model", "needsmod:f", ["needs 'not_installed_pkg_q'", "not installed"]),
        ("model", "badmod:nope", ["has no function 'nope'", "defines:", "wrong_logits"]),
        ("model", "badmod:NOT_A_FUNCTION", ["is an int, not a model function"]),
        ("model", "badmod:sig", ["signature (x)", "(input_shape, num_classes, dropout)"]),
        ("model", "badmod:not_module", ["returned a list, not a torch.nn.Module"]),
        ("model", "badmod:wrong_logits", ["shape (2, 11)", "(B, 10)"]),
        ("model", "badmod:raises", ["raised ValueError: no GPU here"]),
        ("dataset", "badmod:data_sig", ["signature (a, b)", "no arguments"]),
        ("dataset", "badmod:data_none", ["returned a dict, not a rethink.data.Dataset"]),
        ("dataset", "badmod:data_float", ["x_train must be a uint8 tensor", "float32"]),
        ("dataset", "badmod:data_labels", ["test labels fall outside 0..1"]),
    ],
)
def test_bad_user_code_is_one_sentence(example, kind, ref, parts):
    write(example, "badmod", _BAD)
    write(example, "brokenmod", "x = 1 / 0\n")
    write(example, "needsmod", "import not_installed_pkg_q\n")
    with pytest.raises(RethinkError) as err:
        if kind == "model":
            models.build(ref, (1, 2, 2), 10)
        else:
            D.load(ref)
    one_sentence(err, *parts)


def test_unknown_names_mention_your_own():
    with pytest.raises(RethinkError) as err:
        models.build("mlp-wide")
    one_sentence(err, "unknown model 'mlp-wide'", "module:function")
    with pytest.raises(RethinkError) as err:
        D.load("two-blobs")
    one_sentence(err, "unknown dataset 'two-blobs'", "module:function")


def test_source_digest_follows_the_function_and_falls_back_to_the_file(example):
    src = "from torch import nn\ndef make(input_shape, num_classes, dropout):\n    return {}\n"
    write(example, "digestmod", src.format("nn.Linear(1, num_classes)"))
    first = plugins.source_digest("digestmod:make")
    write(example, "digestmod", src.format("nn.Linear(2, num_classes)") + "\n# more\n")
    second = plugins.source_digest("digestmod:make")
    assert first != second
    write(example, "digestmod", src.format("nn.Linear(2, num_classes)") + "\n# other\n")
    assert plugins.source_digest("digestmod:make") == second  # the function's text only
    assert sys.modules.get("digestmod") is not None

    path = write(
        example,
        "partialmod",
        "import functools\nfrom torch import nn\n"
        "def _make(input_shape, num_classes, dropout, width):\n"
        "    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))\n"
        "make = functools.partial(_make, width=3)\n",
    )
    info = plugins.describe("partialmod:make")
    assert info["hashed"] == "module file"
    assert info["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert set(info) == {"ref", "module", "function", "source_sha256", "file", "hashed"}
    assert isinstance(sys.modules["partialmod"].make, functools.partial)
    assert models.count_params(models.build("partialmod:make", (1, 2, 2), 3)) == 4 * 3 + 3


def test_a_changed_dataset_function_is_a_new_cache_entry(example):
    src = (
        "import torch\nfrom rethink.data import from_arrays\n"
        "def make():\n    x = torch.full((10, 1, 2, 2), {})\n"
        "    return from_arrays(x, torch.arange(10) % 2, x[:4], torch.arange(4) % 2)\n"
    )
    write(example, "cachemod", src.format(1))
    a = D.load("cachemod:make")
    assert D.load("cachemod:make") is a and int(a.x_train.max()) == 1
    write(example, "cachemod", src.format(2))
    b = D.load("cachemod:make")
    assert b is not a and int(b.x_train.max()) == 2


def test_the_dataset_cache_is_one_bounded_lru(monkeypatch):
    registry.clear_cache()
    monkeypatch.setattr(registry, "CACHE_SIZE", 2)
    full = D.load("digits")
    sub = D.load("digits", train_size=100)  # the full set and the subset: two entries
    assert len(registry._CACHE) == 2
    assert D.load("digits") is full  # touched: now the most recent
    other = D.load("digits", train_size=200)  # evicts the least recent: the 100-subset
    assert len(registry._CACHE) == 2
    assert D.load("digits", train_size=200) is other and D.load("digits") is full
    assert D.load("digits", train_size=100) is not sub  # rebuilt, equal content
    assert torch.equal(D.load("digits", train_size=100).x_train, sub.x_train)
    registry.clear_cache()
    assert not registry._CACHE


def test_data_registry_never_imports_download_backwards():
    src = (Path(registry.__file__).parent / "download.py").read_text()
    assert "registry" not in re.sub(r'""".*?"""', "", src, flags=re.S)  # code, not docs


def test_from_arrays_checks_and_copies():
    import numpy as np

    x = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    ds = D.from_arrays(x, [0, 1], x, [1, 0], name="tiny")
    assert ds.x_train.shape == (2, 1, 3, 3) and ds.x_train.dtype == torch.uint8
    assert ds.num_classes == 2 and ds.class_names == ("0", "1")
    x[0, 0, 0] = 99
    assert int(ds.x_train[0, 0, 0, 0]) == 0  # a copy: the caller's array is untouched
    with pytest.raises(RethinkError) as err:
        D.from_arrays(x + 300, [0, 1], x, [1, 0])
    one_sentence(err, "0..255")
    with pytest.raises(RethinkError) as err:
        D.from_arrays(x.astype(float), [0, 1], x, [1, 0])
    one_sentence(err, "integer images")


@pytest.fixture
def entry_points(example, monkeypatch):
    """A fake installed package 'fakepkg' registering the example in both groups (and one
    entry point that tries to shadow a built-in)."""
    site = example.parent / "site"
    info = site / "fakepkg-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[rethink.models]\nwide = myplugins:make_wide_mlp\nmlp-1x512 = myplugins:make_wide_mlp\n"
        "\n[rethink.datasets]\nblobs = myplugins:two_blobs\ndigits = myplugins:two_blobs\n"
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def test_entry_points_are_models_and_datasets(entry_points, capsys):
    assert models.count_params(models.build("wide", (1, 8, 8), 2)) == 137218
    assert models.count_params(models.build("mlp-1x512", (1, 8, 8), 2)) != 137218  # built-in
    ident = plugins.identify("model", "wide")
    assert ident["ref"] == "myplugins:make_wide_mlp"
    assert ident["entry_point"] == {"group": "rethink.models", "name": "wide",
                                    "package": "fakepkg", "version": "1.0"}  # fmt: skip
    assert plugins.identify("model", "mlp-1x512") is None  # built-ins win
    assert plugins.identify("dataset", "digits") is None
    assert plugins.identify("model", "myplugins:make_wide_mlp")["hashed"] == "function source"

    assert "blobs" in D.names() and D.names().count("digits") == 1
    assert D.load("blobs").provenance["plugin"]["entry_point"]["package"] == "fakepkg"
    assert D.load("digits").name == "digits" and len(D.load("digits").y_train) == 1437
    rows = {r["name"]: r for r in registry.plugin_rows()}
    assert (
        rows["blobs"]["ref"] == "myplugins:two_blobs" and rows["blobs"]["package"] == "fakepkg 1.0"
    )
    assert "shadowed" in rows["digits"]["status"]

    with pytest.raises(SystemExit) as exit_:
        main(["models", "--input-shape", "1,8,8", "--classes", "2", "--json"])
    assert exit_.value.code in (0, None)
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out.splitlines()[-1])["models"]}
    assert listed["wide"]["params"] == 137218
    assert listed["wide"]["notes"] == "entry point -> myplugins:make_wide_mlp"
    shadow = [m for m in listed.values() if "shadowed by the built-in" in m["notes"]]
    assert [m["name"] for m in shadow] == ["mlp-1x512"]
    with pytest.raises(SystemExit):
        main(["models", "--input-shape", "1,8,8", "--classes", "2"])
    assert "wide" in capsys.readouterr().out


def cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def test_rethink_run_with_a_user_model_and_dataset(example, tmp_path, capsys, one_thread):
    from rethink.store import Store

    db = tmp_path / "runs.db"
    args = ["run", "--model", "myplugins:make_wide_mlp", "--dataset", "myplugins:two_blobs",
            "--corruption", "random-labels", "--max-epochs", "2", "--lr", "0.01",
            "--store", str(db), "--json"]  # fmt: skip
    assert cli(*args) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["status"] == "finished"
    with Store(db, readonly=True) as st:
        (run,) = st.runs()
        assert run["spec"]["model"]["name"] == "myplugins:make_wide_mlp"
        assert [e["epoch"] for e in st.epochs(run["run_id"])] == [0, 1, 2]
    assert cli("run", "--model", "myplugins:nope", "--dataset", "digits",
               "--store", str(db)) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: module 'myplugins' has no function 'nope'") and "\n" not in err


def test_run_ids_follow_the_source_of_user_code(example):
    from rethink.spec import RunSpec

    def spec() -> RunSpec:
        return RunSpec.from_dict({"data": {"dataset": "digits"},
                                  "model": {"name": "idmod:make"}})  # fmt: skip

    src = "from torch import nn\ndef make(input_shape, num_classes, dropout):\n    return {}\n"
    write(example, "idmod", src.format("nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))"))
    first = spec().run_id()
    assert spec().run_id() == first
    write(example, "idmod", src.format("nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes))"))
    assert spec().run_id() != first


_NEEDS_SPEC_CODE = "needs lead: spec.run_id / lifecycle provenance use plugins.spec_code"


def test_imagefolder_specs_are_not_user_code():
    from rethink.spec import RunSpec

    spec = RunSpec.from_dict({"data": {"dataset": "imagefolder:/no/such"},
                              "model": {"name": "mlp-1x8"}})  # fmt: skip
    assert len(spec.run_id()) == 16
    assert plugins.spec_code("mlp-1x8", "imagefolder:/no/such") == {}


def test_run_ids_of_entry_point_models_follow_their_source(entry_points):
    from rethink.spec import RunSpec

    def run_id(model: str) -> str:
        return RunSpec.from_dict({"data": {"dataset": "digits"},
                                  "model": {"name": model}}).run_id()  # fmt: skip

    before = run_id("wide")
    (entry_points.parent / "project" / "myplugins.py").write_text(
        doc_example().replace("2048", "1024")
    )
    sys.modules.pop("myplugins", None)
    assert run_id("wide") != before


def test_each_run_records_its_user_code(example, tmp_path, one_thread):
    from rethink import runner
    from rethink.spec import RunSpec
    from rethink.store import Store

    spec = RunSpec.from_dict({"data": {"dataset": "myplugins:two_blobs"},
                              "model": {"name": "myplugins:make_wide_mlp"},
                              "train": {"max_epochs": 1}})  # fmt: skip
    runner.run(spec, store=tmp_path / "runs.db")
    with Store(tmp_path / "runs.db", readonly=True) as st:
        (run,) = st.runs()
    code = run["provenance"]["code"]
    assert code["model"]["ref"] == "myplugins:make_wide_mlp"
    assert code["dataset"]["source_sha256"] == plugins.source_digest("myplugins:two_blobs")


@pytest.mark.slow  # two spawned workers importing torch: 42 s measured at load 7 on 2 cores
def test_a_two_job_sweep_imports_user_code_in_its_workers(example, tmp_path, monkeypatch):
    """The model module is in the cwd, the dataset module only on sys.path (as PYTHONPATH
    would put it): spawn hands both to the worker processes."""
    from rethink.store import Store
    from rethink.sweep import plan_from_dict, run_sweep

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "blobsdata.py").write_text("from myplugins import two_blobs  # noqa\n")
    sys.path.insert(0, str(elsewhere))
    plan = plan_from_dict({
        "name": "plugins",
        "base": {"data": {"dataset": "blobsdata:two_blobs", "train_size": 100},
                 "model": {"name": "myplugins:make_wide_mlp"},
                 "train": {"max_epochs": 2, "lr": 0.01}},
        "axes": {"labels": ["none", "random-labels"]},
    })  # fmt: skip
    db = tmp_path / "sweep.db"
    summary = run_sweep(plan, db, jobs=2)
    assert summary.finished == 2, summary.errors
    with Store(db, readonly=True) as st:
        runs = st.runs()
        for r in runs:
            assert [e["epoch"] for e in st.epochs(r["run_id"])] == [0, 1, 2]
    assert len(runs) == 2
