"""The fault suite: every test under tests/faults/ is marked `faults` (run them alone with
`pytest -m faults`); the default suite runs the short trials, `-m slow` adds the long ones.
Counts (SIGKILL trials and their outcomes) print with `-s`."""

from __future__ import annotations

from pathlib import Path

import pytest

from rethink.data import _paths

_HERE = Path(__file__).parent

# The run every fault test interrupts: 30 epochs of a small MLP on digits, one thread.
EPOCHS = 30
RUN = ["run", "--dataset", "digits", "--model", "mlp-1x64", "--max-epochs", str(EPOCHS),
       "--checkpoint-every", "3", "--threads", "1", "--seed", "0"]  # fmt: skip


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: the fault suite (tests/faults/)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """An empty cache, no RETHINK_DATA, no system data, one thread; no leaks between rows."""
    import rethink.data as D

    monkeypatch.setenv("RETHINK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RETHINK_DATA", raising=False)
    monkeypatch.delenv("RETHINK_MIRROR", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(_paths, "SYSTEM_DATA", tmp_path / "no-system")
    D.clear_cache()
    yield
    D.clear_cache()


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """The rows of RUN uninterrupted, written by a child process: what every resumed run
    must equal (timing columns aside)."""
    from ._util import reference, run_child

    store = tmp_path_factory.mktemp("ref-run") / "ref.db"
    done = run_child(*RUN, "--store", store)
    assert done.returncode == 0, done.stderr[-2000:]
    return reference(store)
