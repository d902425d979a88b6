"""The code base stays ruff-clean and mypy-clean (configuration in pyproject.toml)."""

from __future__ import annotations

import os
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


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter's contracts (pyproject.toml) checked on the package under ``root``."""
    pytest.importorskip("importlinter", reason="import-linter not installed (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", "--no-cache", "--config", str(root / "pyproject.toml")],
                          cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)})


def test_import_linter_contracts_are_kept() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0 and "0 broken" in result.stdout, result.stdout + result.stderr


def test_import_linter_control_planted_violations_break_each_contract(tmp_path: Path) -> None:
    shutil.copytree(REPO / "detprof", tmp_path / "detprof", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "detprof" / "check" / "planted_torch.py").write_text("import torch\n")
    with (tmp_path / "detprof" / "stats.py").open("a") as stats:
        stats.write("\nimport tensorflow\n")
    (tmp_path / "detprof" / "report" / "planted.py").write_text("from detprof.backends.torch import zoo\n")
    (tmp_path / "detprof" / "zoo" / "planted.py").write_text("from detprof.cli import app\n")  # zoo -> cli -> zoo
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "4 broken" in result.stdout, result.stdout
    assert "detprof.check.planted_torch -> torch" in result.stdout


def test_every_top_level_module_is_a_source_of_the_forbidden_contracts() -> None:
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11's tomllib reads pyproject.toml")
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    tops = {f"detprof.{path.stem if path.suffix else path.name}" for path in (REPO / "detprof").iterdir()
            if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()}
    implementations = {"detprof.backends.torch", "detprof.backends.tf"}
    for contract in contracts:
        if contract["type"] != "forbidden":
            continue
        sources = set(contract["source_modules"])
        assert tops - {"detprof.backends"} <= sources, (contract["name"], sorted(tops - sources))
        assert "detprof.backends" not in sources and sources - tops <= implementations
