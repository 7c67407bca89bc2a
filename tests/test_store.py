import sqlite3

import pytest

from rethink.errors import RethinkError
from rethink.spec import RunSpec
from rethink.store import Store


def test_round_trip(tmp_path):
    spec = RunSpec.from_dict({"dataset": "digits", "model.name": "mlp-1x64"})
    rid = spec.run_id()
    with Store(tmp_path / "s.db") as st:
        st.begin_run(rid, spec.normalized().to_dict(), sweep="sw")
        for e in range(3):
            st.append_epoch(
                rid,
                {
                    "epoch": e,
                    "step": 10 * e,
                    "train_acc": e / 3,
                    "test_acc": 0.1,
                    "lr": 0.01,
                    "seconds": 1.0,
                    "changed_acc": 0.5,
                },
            )
        st.append_epoch(rid, {"epoch": 2, "step": 20, "train_acc": 0.9})  # replaces
        st.finish(rid, "finished", {"epochs": 2, "train_acc": 0.9, "params": 123, "custom": [1, 2]})
    with Store(tmp_path / "s.db", readonly=True) as st:
        (run,) = st.runs()
        assert run["status"] == "finished" and run["spec"]["seed"] == 0
        assert run["result"]["params"] == 123 and run["result"]["custom"] == [1, 2]
        eps = st.epochs(rid)
        assert [e["epoch"] for e in eps] == [0, 1, 2]
        assert eps[1]["changed_acc"] == 0.5 and eps[2]["train_acc"] == 0.9


def test_truncate_and_resume(tmp_path):
    with Store(tmp_path / "s.db") as st:
        st.begin_run("r", {})
        for e in range(5):
            st.append_epoch("r", {"epoch": e})
        st.truncate_epochs("r", 2)
        assert st.last_epoch("r") == 2
        st.begin_run("r", {})  # resuming keeps the epochs it has
        assert st.last_epoch("r") == 2


def test_not_a_store(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    before = junk.read_bytes()
    with pytest.raises(RethinkError):
        Store(junk)
    assert junk.read_bytes() == before
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(RethinkError):
        Store(other)
    tables = sqlite3.connect(other).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("t",)]
    with pytest.raises(RethinkError):
        Store(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()


def test_resolve_takes_a_whole_id_or_a_unique_prefix(tmp_path):
    with Store(tmp_path / "s.db") as st:
        for rid in ("ab12", "ab13", "ab1", "c%_d"):
            st.begin_run(rid, {})
        assert st.resolve("ab12") == "ab12" and st.resolve(" ab13 ") == "ab13"
        assert st.resolve("ab1") == "ab1"  # a whole id wins over the longer ones it prefixes
        assert st.resolve("c%") == "c%_d"  # no SQL wildcards
        for key, needle in (("ab", "matches 3 runs"), ("c_", "has no run"), ("", "empty")):
            with pytest.raises(RethinkError, match=needle):
                st.resolve(key)
