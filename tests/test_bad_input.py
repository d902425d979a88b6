"""Bad input, for every command: exit 2 and ONE line on stderr naming the bad value, before any
measurement starts, whether stderr is a terminal or a pipe; under --json the error is also the one
JSON document on stdout."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

# One bad value per command (and per db subcommand), each with the words its error must contain.
BAD = {
    "overhead": (["overhead", "--arch", "nope"], "unknown arch 'nope'"),
    "kernels": (["kernels", "--trace", "missing.json"], "missing.json"),
    "diff": (["diff", "missing-a.json", "missing-b.json"], "missing-a.json"),
    "import": (["import", "missing.json"], "missing.json"),
    "report": (["report", "--out", ""], "--out '' is not accepted"),
    "stability": (["stability", "--runs", "1"], "--runs 1 is not accepted"),
    "check": (["check", "--arch", "nope"], "unknown arch 'nope'"),
    "audit": (["audit", "--arch", "nope"], "unknown arch 'nope'"),
    "advise": (["advise", "--arch", "nope"], "unknown arch 'nope'"),
    "sweep": (["sweep", "missing.toml"], "missing.toml"),
    "runs": (["runs", "--db", "missing.sqlite"], "no results database at 'missing.sqlite'"),
    "gpus": (["gpus", "--nope"], "no such option: --nope"),
    "zoo": (["zoo", "--nope"], "no such option: --nope"),
    "db merge": (["db", "merge", "missing.sqlite"], "'missing.sqlite' is not a file"),
    "db export": (["db", "export", "--db", "missing.sqlite"], "no results database at 'missing.sqlite'"),
}


def _run(args: list[str], cwd: Path, terminal: bool) -> tuple[int, str, str]:
    """Run detprof; stderr a pipe, or a pseudo-terminal as in an interactive shell. (exit, stdout, stderr)"""
    argv = [sys.executable, "-m", "detprof.cli", *args]
    env = {**os.environ, "COLUMNS": "100"}
    if not terminal:
        done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=120, env=env)
        return done.returncode, done.stdout, done.stderr
    leader, follower = pty.openpty()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=follower, cwd=cwd, env=env, text=True)
    os.close(follower)
    stdout = process.communicate(timeout=120)[0]
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.returncode, stdout, b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.mark.slow
@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
@pytest.mark.parametrize("command", sorted(BAD))
def test_bad_input_exits_2_in_one_line_and_as_json(command: str, terminal: bool, tmp_path: Path) -> None:
    args, words = BAD[command]
    code, stdout, stderr = _run(args, tmp_path, terminal)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, (code, stderr)
    assert len(lines) == 1 and stderr.strip() == lines[0], stderr  # no blank line before it either
    assert lines[0].startswith("detprof: error: ") and words in lines[0], lines[0]
    assert "\x1b[" not in lines[0]  # no colour codes around the one line
    assert stdout == ""  # nothing on stdout without --json
    assert not list(tmp_path.rglob("*.sqlite")) and not (tmp_path / ".detprof").exists()  # nothing measured
    if command in ("gpus", "zoo"):
        return  # their bad input is an unknown option: --json below would be just another
    code, stdout, stderr = _run([*args, "--json"], tmp_path, terminal)
    assert code == 2
    document = json.loads(stdout)  # exactly one JSON document
    assert document == {"error": {"message": lines[0].removeprefix("detprof: error: "), "exit_code": 2}}


def test_a_json_error_document_can_fail_its_negative_control(tmp_path: Path) -> None:
    """The checks above can fail: a good command under --json prints its document, not an error."""
    code, stdout, _ = _run(["zoo", "--json"], tmp_path, terminal=False)
    assert code == 0 and "error" not in json.loads(stdout)
