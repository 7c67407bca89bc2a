import subprocess
import sys

from rethink.cli import app, main


def test_version_runs(capsys):
    try:
        main(["version"])
    except SystemExit as e:
        assert e.code in (0, None)
    assert "rethink" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error():
    r = subprocess.run(
        [sys.executable, "-m", "rethink", "no-such-command"], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_rethink_error_is_one_line(monkeypatch, capsys):
    from rethink.errors import RethinkError

    @app.command("_boom", hidden=True)
    def _boom() -> None:
        raise RethinkError("something specific was wrong.")

    try:
        main(["_boom"])
    except SystemExit as e:
        assert e.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: something specific was wrong."


def test_public_api_is_importable_from_the_top():
    import rethink

    for name in rethink.__all__:
        assert getattr(rethink, name) is not None
