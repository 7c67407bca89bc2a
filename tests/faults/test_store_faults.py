"""Stores on read-only and full file systems (issue 9, items 2 and 4).

Mounting needs root and a kernel that lets this container mount; where it cannot, the test
is skipped with the reason. Every mount is undone in a `finally`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from ._util import assert_same_as, cli, fingerprint, mounted, one_sentence, run_child
from .conftest import RUN

LEAD_2_TMP = "lead: item 2, a run stopped by a full disk is marked interrupted, temp files gone"


@pytest.fixture(scope="module")
def finished(reference_run, tmp_path_factory) -> Path:
    """A folder holding the reference store (one finished RUN and its final checkpoint)."""
    folder = tmp_path_factory.mktemp("finished")
    src = Path(reference_run["store"])
    shutil.copy(src, folder / "s.db")
    if Path(f"{src}.ckpt").is_dir():
        shutil.copytree(f"{src}.ckpt", folder / "s.db.ckpt")
    return folder


@pytest.fixture
def read_only_store(finished, tmp_path):
    """finished/ copied, then bind-mounted read-only at tmp_path/ro."""
    src = tmp_path / "src"
    shutil.copytree(finished, src)
    with mounted(tmp_path / "ro", "--bind", str(src)) as ok:
        if not ok:
            pytest.skip("bind mounts are not allowed here (needs root and CAP_SYS_ADMIN)")
        remount = os.system(f"mount -o remount,ro,bind '{tmp_path / 'ro'}' 2>/dev/null")
        if remount != 0:
            pytest.skip("this kernel does not allow a read-only bind remount")
        yield tmp_path / "ro" / "s.db"


def test_read_only_mount_can_be_listed(read_only_store, reference_run):
    code, out, err = cli(["runs", "--store", read_only_store, "--json"])
    assert code == 0 and err == "", err
    assert next(iter(reference_run["rows"])) in out


def test_read_only_mount_can_be_reported(read_only_store, tmp_path):
    code, out, err = cli(["report", read_only_store, "--out", tmp_path / "rep"])
    assert code == 0, err
    assert (tmp_path / "rep" / "report.html").is_file()


def test_read_only_mount_refuses_a_new_run_in_one_sentence(read_only_store):
    before = fingerprint(read_only_store)
    code, out, err = cli([*RUN[:-1], "7", "--store", read_only_store])  # a new seed: a new run
    assert one_sentence(code, out, err) is None, err[-1500:]
    assert "read-only" in err and fingerprint(read_only_store) == before


def test_chmod_read_only_store(finished, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: permission bits do not stop root (the bind mount test "
                    "covers read-only stores)")  # fmt: skip
    store = tmp_path / "s.db"
    shutil.copy(finished / "s.db", store)
    store.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        code, out, err = cli(["runs", "--store", store])
        assert code == 0, err
    finally:
        tmp_path.chmod(0o755)


# -------------------------------------------------------------------------- disk full
def _fill(folder: Path, leave_bytes: int) -> None:
    """Fill the file system of `folder` until `leave_bytes` are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave_bytes))


@pytest.fixture(scope="module")
def full_tmpfs(tmp_path_factory):
    """A 3 MB tmpfs with about 160 KB left, mounted for this module's disk-full tests."""
    target = tmp_path_factory.mktemp("disk") / "full"
    with mounted(target, "-t", "tmpfs", "-o", "size=3m", "tmpfs") as ok:
        if not ok:
            pytest.skip("mounting a tmpfs is not allowed here (needs root and CAP_SYS_ADMIN)")
        _fill(target, 160 * 1024)
        yield target


def _status(store: Path) -> str:
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return con.execute("SELECT status FROM runs").fetchone()[0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def disk_full_run(full_tmpfs):  # one run for the three tests below, which run in this order
    store = full_tmpfs / "s.db"
    first = run_child(*RUN, "--store", store)
    if first.returncode == 0:
        pytest.fail("the run finished: the tmpfs did not fill (leave less room in _fill)")
    return store, first


def test_disk_full_is_one_sentence_naming_the_device(disk_full_run):
    store, first = disk_full_run
    assert one_sentence(first.returncode, first.stdout, first.stderr) is None, first.stderr[-2000:]
    assert "space" in first.stderr and str(store.parent) in first.stderr


def test_disk_full_marks_the_run_interrupted_and_removes_temp_files(disk_full_run):
    store, _ = disk_full_run
    assert store.exists() and _status(store) == "interrupted"
    names = [p.name for p in store.parent.rglob("*")]
    assert not [n for n in names if ".tmp" in n or "partial" in n], names


def test_after_freeing_space_the_rerun_resumes_exactly(disk_full_run, reference_run, request):
    store, _ = disk_full_run
    leftovers = [p for p in store.parent.rglob("*") if ".tmp" in p.name or "partial" in p.name]
    if leftovers:  # today: partial checkpoint files stay and fail the next try (item 2)
        request.applymarker(pytest.mark.xfail(strict=True, reason=LEAD_2_TMP))
    (store.parent / "filler").unlink()  # free the space, as a user would
    again = run_child(*RUN, "--store", store)
    assert again.returncode == 0, again.stderr[-2000:]
    assert_same_as(store, reference_run)
