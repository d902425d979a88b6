"""User code (a --model) runs in child processes only: nothing it does can end detprof with an
exit code of its own, print into a --json document, or hang it. Each case runs detprof as a real
command, its stderr a pipe, as a CI job would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MODELS = Path(__file__).parent / "data" / "models"
HOSTILE = f"{MODELS / 'hostile_models.py'}"
SMALL = ["--batch-size", "2", "--image-size", "16", "--steps", "1"]
COMMANDS = {
    "overhead": ["overhead", "--repeats", "1", "--warmup", "0", "--profile-steps", "0", *SMALL],
    "check": ["check", *SMALL],
    "audit": ["audit", "--batch-size", "2", "--image-size", "16"],
}


def _detprof(args: list[str], tmp_path: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "detprof.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path, env={**os.environ, **env})


CASES = [
    ("exits_zero", "called sys.exit(0) while being imported or built"),
    ("os_exits_zero", "ended the process with exit code 0 while being imported or built"),
    ("segfaults", "was killed by signal 11 while being imported or built"),
]


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("function", "message"), CASES)
def test_a_model_that_ends_its_process_exits_2_in_one_line(command: str, function: str, message: str,
                                                            tmp_path: Path) -> None:
    done = _detprof([*COMMANDS[command], "--model", f"{HOSTILE}:{function}"], tmp_path)
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("detprof: error: --model ") and message in lines[0], done.stderr
    assert done.stdout == ""
    assert not (tmp_path / ".detprof" / "results.sqlite").exists() or command != "overhead"


@pytest.mark.slow
def test_a_module_that_exits_at_import_and_one_that_hangs_exit_2(tmp_path: Path) -> None:
    done = _detprof([*COMMANDS["check"], "--model", f"{MODELS / 'exits_at_import.py'}:build"], tmp_path)
    assert done.returncode == 2 and "called sys.exit(3) while being imported or built" in done.stderr, done.stderr
    hung = _detprof([*COMMANDS["audit"], "--model", f"{HOSTILE}:hangs"], tmp_path, timeout=60,
                    DETPROF_MODEL_PROBE_TIMEOUT="3")
    assert hung.returncode == 2 and "did not finish importing and building its model within 3 s" in hung.stderr
    assert len(hung.stderr.strip().splitlines()) == 1
    bad = _detprof([*COMMANDS["audit"], "--model", f"{HOSTILE}:fine"], tmp_path, DETPROF_MODEL_PROBE_TIMEOUT="abc")
    assert bad.returncode == 2 and "$DETPROF_MODEL_PROBE_TIMEOUT='abc' is not accepted" in bad.stderr


@pytest.mark.slow
def test_a_model_that_prints_leaves_the_json_document_whole_and_a_good_model_passes(tmp_path: Path) -> None:
    chatty = _detprof([*COMMANDS["overhead"], "--model", f"{HOSTILE}:prints_to_stdout", "--json"], tmp_path)
    assert chatty.returncode == 0, chatty.stderr
    document = json.loads(chatty.stdout)  # nothing but the document on stdout
    assert document["ratio"] is not None and "building the model now" not in chatty.stdout
    # Negative control: a working model's audit and check really run, and exit 0 only then.
    audit = _detprof([*COMMANDS["audit"], "--model", f"{HOSTILE}:fine", "--json"], tmp_path)
    assert audit.returncode == 0 and json.loads(audit.stdout)["fully_deterministic"] is True, audit.stderr
    check = _detprof([*COMMANDS["check"], "--model", f"{HOSTILE}:fine", "--json"], tmp_path)
    assert check.returncode == 0 and json.loads(check.stdout)["bitwise_identical"] is True, check.stderr
