"""The CLI through typer's CliRunner: help, JSON output, and exit code 2 for user mistakes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from detprof.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]


def test_every_command_has_help_and_appears_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    assert {"overhead", "kernels", "runs", "gpus", "zoo"} <= set(COMMANDS)
    for name in COMMANDS:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0
        assert "--json" in result.output
        assert get_command(app).commands[name].help, f"{name} has no help text"  # type: ignore[attr-defined]
        assert f"detprof {name}" in readme, f"README does not show `detprof {name}`"


def test_zoo_json_lists_arch_framework_params_input() -> None:
    result = runner.invoke(app, ["zoo", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    vgg19 = next(r for r in rows if r["arch"] == "vgg19")
    assert vgg19 == {**vgg19, "framework": "pytorch", "params": 143_667_240, "input": [3, 224, 224]}


def test_gpus_json_is_a_list() -> None:
    result = runner.invoke(app, ["gpus", "--json"])
    assert result.exit_code == 0
    assert isinstance(json.loads(result.stdout)["gpus"], list)


@pytest.mark.parametrize(("args", "message"), [
    (["--arch", "alexnet"], r"unknown arch 'alexnet'; accepted: vgg16"),
    (["--arch", "medium-cnn", "--kernel-size", "0"], r"--kernel-size 0 is not accepted; use 1 to 7"),
    (["--arch", "medium-cnn", "--kernel-size", "9"], r"--kernel-size 9 is not accepted; use 1 to 7"),
    (["--batch-size", "0"], r"--batch-size 0 is not accepted; use an integer >= 1"),
    (["--steps", "-3"], r"--steps -3 is not accepted; use >= 1"),
    (["--repeats", "0"], r"--repeats 0 is not accepted"),
    (["--modes", "default,turbo"], r"unknown mode 'turbo'; accepted: default, deterministic"),
    (["--modes", "default"], r"--modes takes two modes"),
    (["--arch", "medium-cnn", "--image-size", "32"], r"--image-size 32 is too small for medium-cnn; use >= 64"),
    (["--gpu", "v100"], r"GPU 'v100' is not on this machine; available: .*cpu"),
])
def test_overhead_bad_input_exits_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    import torch

    if "--gpu" in args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = runner.invoke(app, ["overhead", *args, "--db", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r.sqlite").exists()  # nothing ran, nothing stored


@pytest.mark.parametrize("command", [["kernels"], ["runs"]])
def test_reading_commands_without_runs_exit_2(command: list[str], tmp_path: Path) -> None:
    result = runner.invoke(app, [*command, "--db", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 2
    assert "no runs yet" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unreadable_database_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"\x00garbage" * 500)
    for command in (["kernels"], ["runs"]):
        result = runner.invoke(app, [*command, "--db", str(bad)])
        assert result.exit_code == 2
        assert "cannot use" in result.stderr and "Traceback" not in result.stderr


def test_kernels_rejects_top_zero(tmp_path: Path) -> None:
    result = runner.invoke(app, ["kernels", "--top", "0", "--db", str(tmp_path / "x.sqlite")])
    assert result.exit_code == 2 and "--top 0 is not accepted" in result.stderr
