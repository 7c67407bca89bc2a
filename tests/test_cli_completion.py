"""Shell completion: `rethink --show-completion bash` prints a script, and the completion
protocol it relies on answers with rethink's commands."""

from __future__ import annotations

import os
import subprocess
import sys


def rethink(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    code = "import sys; from rethink.cli import main; sys.argv[0] = 'rethink'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_show_completion_for_bash_and_its_answers():
    shown = rethink("--show-completion", "bash")
    assert shown.returncode == 0, shown.stderr
    assert "complete -o default -F _rethink_completion rethink" in shown.stdout
    assert "_RETHINK_COMPLETE=complete_bash" in shown.stdout
    # what bash runs on <TAB> after `rethink da` and `rethink data f`
    env = {"_RETHINK_COMPLETE": "complete_bash", "COMP_WORDS": "rethink da", "COMP_CWORD": "1"}
    assert rethink(env=env).stdout.split() == ["data"]
    env.update(COMP_WORDS="rethink data f", COMP_CWORD="2")
    assert rethink(env=env).stdout.split() == ["fetch"]
    helped = rethink("--help")
    assert "--install-completion" in helped.stdout and "--show-completion" in helped.stdout
