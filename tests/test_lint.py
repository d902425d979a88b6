"""The code base stays ruff-clean and mypy-clean (configuration in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed (pip install -e '.[test]')")
    result = subprocess.run([ruff, "check", "detprof", "tests", "benchmarks"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy", reason="mypy not installed (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), *args],
                          cwd=REPO, capture_output=True, text=True)


def test_mypy_is_clean() -> None:
    result = _mypy()  # the files and settings of [tool.mypy]: the whole package
    assert result.returncode == 0 and "Success: no issues found" in result.stdout, result.stdout + result.stderr


def test_mypy_control_a_wrong_key_read_is_caught(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text("from detprof.stats import RatioEstimate\n\n\ndef width(e: RatioEstimate) -> str:\n"
                     "    return e.half_width\n")  # a float | None returned as str
    result = _mypy(str(wrong))
    assert result.returncode == 1 and 'Incompatible return value type (got "float | None", expected "str")' \
        in result.stdout, result.stdout
