"""The docs' generated blocks (tools/regenerate_docs.py) are current, and the check would see a stale one."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "regenerate_docs.py"


def _tool() -> object:
    spec = importlib.util.spec_from_file_location("regenerate_docs", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_every_generated_block_and_the_command_reference_are_current() -> None:
    done = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_stale_block_is_rewritten_and_a_current_one_is_left_alone(tmp_path: Path) -> None:
    tool = _tool()
    command = "$ detprof kernels --trace tests/data/traces/a100_diff_control.json.gz --top 2 | cat"
    stale = tmp_path / "page.md"
    stale.write_text(f"Text before.\n\n<!-- generated -->\n```\n{command}\nan old output\n```\n\nText after.\n")
    current = tool.regenerate_file(stale)  # type: ignore[attr-defined]
    assert current != stale.read_text() and "an old output" not in current
    assert "top 2 of GPU kernels" in current and current.startswith("Text before.") and current.endswith("after.\n")
    stale.write_text(current)
    assert tool.regenerate_file(stale) == current  # control: what is current stays as it is
    # a block without the marker is somebody's pasted output: never rewritten
    pasted = tmp_path / "pasted.md"
    pasted.write_text(f"```\n{command}\nan old output\n```\n")
    assert tool.regenerate_file(pasted) == pasted.read_text()


def test_the_reference_lists_every_command_and_each_check_gate() -> None:
    from detprof.check.gates import GATES

    reference = (REPO / "docs" / "reference.md").read_text()
    for words in _tool().command_paths():  # type: ignore[attr-defined]
        assert f"$ detprof {' '.join([*words, '--help'])}" in reference
    check = reference.split("## `detprof check`")[1].split("## ")[0]
    assert all(gate.option in check for gate in GATES)
