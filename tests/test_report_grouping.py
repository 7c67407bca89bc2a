"""The report groups honestly: only seeds pooled, the fields that differ named, one naming of
settings, the paper's numbers only beside the same setting, escaped tables, log-axis Fig. 1a,
distinct line styles, unevaluated epochs skipped."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from test_report import _fake_run  # tests/ is on sys.path

from rethink.cli import main
from rethink.report import Table, fig1a_table, load_frames, results_table, to_latex, to_markdown
from rethink.report import _figures as F
from rethink.report._names import corruption_name, varying
from rethink.report._tables import latex_escape
from rethink.spec import RunSpec
from rethink.store import Store


@pytest.fixture()
def wd_store(tmp_path):
    """Table 1 evidence shape: one seed per setting, with and without weight decay."""
    db = tmp_path / "wd.db"
    base = RunSpec.from_dict({"dataset": "cifar10", "model.name": "mlp-1x512"})
    with Store(db) as st:
        for wd, true_test in ((0.0, 0.5037), (5e-4, 0.5119)):
            for kind, test, steps in (("none", true_test, 400), ("random-labels", 0.1, 1600)):
                spec = base.override({"weight_decay": wd, "labels": kind})
                _fake_run(st, spec, f"{kind} wd={wd}", 1.0, test, steps, "table1")
    return db


def test_weight_decay_runs_are_two_groups_not_two_seeds(wd_store):
    runs, epochs = load_frames(wd_store)
    assert varying(runs) == ["corruption.kind", "corruption.prob", "train.weight_decay"]
    t = results_table(runs, "table1").frame
    assert len(t) == 4 and set(t["runs"]) == {1}
    assert list(t["weight decay"]) == ["0", "0.0005", "0", "0.0005"]
    true = t[t["setting"] == "true labels"].set_index("weight decay")
    assert true.loc["0", "test acc"] == pytest.approx(50.37)
    assert true.loc["0.0005", "test acc"] == pytest.approx(51.19)  # never their mean
    # the paper's Table 1 row of each: same dataset, model, corruption and weight decay
    assert true.loc["0", "paper test"] == 50.51 and true.loc["0.0005", "paper test"] == 50.39
    a = fig1a_table(runs, epochs, "table1").frame
    assert len(a) == 4 and set(a["runs"]) == {1}
    assert list(a["relative"]) == pytest.approx([1.0, 4.0, 1.0, 4.0])
    md = to_markdown(results_table(runs, "table1"))
    assert "weight decay" in md and "| 2 |" not in md


def test_fig1a_has_a_panel_per_setting_log_loss_and_distinct_styles(wd_store):
    runs, epochs = load_frames(wd_store)
    fig = F.fig1a(runs, epochs, "table1")
    try:
        axes = fig.axes
        assert len(axes) == 2
        titles = [ax.get_title() for ax in axes]
        assert titles == [
            "CIFAR-10, MLP 1x512 (weight decay 0)",
            "CIFAR-10, MLP 1x512 (weight decay 0.0005)",
        ]
        assert "CIFAR-10, MLP 1x512" in fig._suptitle.get_text()
        for ax in axes:
            assert ax.get_yscale() == "log"
            lines = [ln for ln in ax.get_lines() if ln.get_label()[:1] != "_"]
            assert [ln.get_label() for ln in lines] == ["true labels", "random labels"]
            styles = {(ln.get_linestyle(), ln.get_marker(), ln.get_color()) for ln in lines}
            assert len(styles) == len(lines)
            assert len({ln.get_linestyle() for ln in lines}) == len(lines)
    finally:
        plt.close(fig)


KINDS = [
    ({"labels": "none"}, "true labels"),
    ({"labels": "random-labels"}, "random labels"),
    ({"labels": "shuffled-pixels"}, "shuffled pixels"),
    ({"labels": "random-pixels"}, "random pixels"),
    ({"labels": "gaussian"}, "Gaussian"),
    ({"labels": "partial-labels", "corrupt_prob": 0.4}, "partial labels (p=0.4)"),
]


@pytest.mark.parametrize(("over", "name"), KINDS)
def test_one_naming_of_settings(over, name, tmp_path):
    spec = RunSpec.from_dict({"dataset": "digits", "model.name": "mlp-1x512"}).override(over)
    d = spec.normalized().to_dict()["corruption"]
    assert corruption_name(d["kind"], d["prob"], d["matrix"]) == name
    db = tmp_path / "n.db"
    with Store(db) as st:
        _fake_run(st, spec, f"corruption.kind={d['kind']} seed=0", 1.0, 0.5, 10, "s")
    runs, _ = load_frames(db)
    t = results_table(runs, "s")
    assert list(t.frame["setting"]) == [name]
    assert "kind=" not in to_markdown(t) and "kind=" not in to_latex(t)


def test_names_of_the_new_corruption_kinds():
    assert corruption_name("cifar10n-aggre") == "human labels (CIFAR-10N aggre)"
    assert corruption_name("cifar10n-random2") == "human labels (CIFAR-10N random2)"
    assert (
        corruption_name("noise-matrix", 0.0, "cifar10n-worst")
        == "class-dependent noise (T from cifar10n-worst)"
    )


def test_paper_numbers_only_beside_the_same_setting(tmp_path):
    db = tmp_path / "d.db"
    spec = RunSpec.from_dict({"dataset": "digits", "model.name": "mlp-1x512"})
    with Store(db) as st:
        _fake_run(st, spec, "true", 1.0, 0.97, 40, "s")
    runs, _ = load_frames(db)
    t = results_table(runs, "s")
    assert "paper test" not in t.frame and "paper train" not in t.frame
    ref = "paper: CIFAR-10, same model (train / test)"
    assert t.frame.loc[0, ref] == "100.00 / 50.51 (Table 1)"
    assert "reference from a different setting" in t.caption
    for text in (t.caption, to_markdown(t), to_latex(t)):
        assert "PAPER.md" not in text and ".md" not in text


def test_the_jpeg_copy_of_cifar10_is_the_papers_dataset(tmp_path):
    db = tmp_path / "j.db"
    spec = RunSpec.from_dict({"dataset": "cifar10-jpeg", "model.name": "mlp-1x512"})
    with Store(db) as st:
        _fake_run(st, spec, "true", 1.0, 0.52, 40, "s")
    runs, _ = load_frames(db)
    t = results_table(runs, "s").frame
    assert t.loc[0, "paper test"] == 50.51 and t.loc[0, "dataset"] == "CIFAR-10 (JPEG)"
    assert "paper: CIFAR-10, same model (train / test)" not in t


def test_tables_escape_latex_and_align_numbers():
    frame = pd.DataFrame(
        {"setting a_b & {c}": ["50% $x^2$ ~ #1", "plain"], "acc": [1.5, 2.25], "acc sd": [0.1, 0]}
    )
    t = Table("x", "T_1 & co", frame, "p = 100% {done} ~ #2 ^ $")
    tex = to_latex(t)
    assert r"50\% \$x\textasciicircum 2\$ \textasciitilde \space \#1" in tex  # Styler's forms
    assert r"setting a\_b \& \{c\}" in tex
    assert r"\caption{T\_1 \& co. p = 100\% \{done\} \textasciitilde{} \#2" in tex
    assert r"\begin{tabular}{lr}" in tex and r"\toprule" in tex and r"\midrule" in tex
    assert r"1.50 $\pm$ 0.10" in tex
    assert latex_escape("a\\b") == r"a\textbackslash{}b"
    md = to_markdown(Table("x", "T", pd.DataFrame({"s": ["a|b"], "n": [3.0]}), "c"))
    header, rule, row = md.splitlines()[2:5]
    assert rule.split("|")[1].startswith(":") and rule.split("|")[2].endswith(":")
    assert r"a\|b" in row


def test_unevaluated_epochs_are_skipped(tmp_path):
    db = tmp_path / "e.db"
    spec = RunSpec.from_dict({"dataset": "digits", "model.name": "mlp-1x512"}).normalized()
    rid = spec.run_id()
    with Store(db) as st:
        st.begin_run(rid, spec.to_dict(), sweep="s", label="x")
        for e in range(5):
            acc = None if e % 2 else 0.2 * e + 0.1  # the test set evaluated every 2 epochs
            st.append_epoch(
                rid,
                {"epoch": e, "step": e, "train_loss": 1.0, "train_acc": 0.5, "test_loss": None,
                 "test_acc": acc, "lr": 0.1, "seconds": 1.0},
            )  # fmt: skip
        st.finish(rid, "finished", {"epochs": 4, "test_acc": 0.9, "train_acc": 1.0})
    runs, epochs = load_frames(db)
    fig = F.curves(runs, epochs, "s")
    try:
        (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label()[:1] != "_"]
        assert list(line.get_xdata()) == [0, 2, 4]
        assert not any(math.isnan(y) for y in line.get_ydata())
        assert "digits (8x8), MLP 1x512" in fig.axes[0].get_title()
    finally:
        plt.close(fig)


def test_report_out_is_a_file_is_one_sentence(wd_store, tmp_path, capsys):
    target = tmp_path / "existing"
    target.write_text("keep me")
    for args in (
        [str(wd_store), "--out", str(target)],
        [str(wd_store), "--out", str(target / "sub")],
        [],
        [str(wd_store), "--bogus"],
        [str(wd_store), "--sweep"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(["report", *args])
        assert exc.value.code == 2
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert err.startswith("error: ") and "\n" not in err, err
        assert "Usage" not in captured.out + captured.err and "╭" not in captured.err
    assert target.read_text() == "keep me"
