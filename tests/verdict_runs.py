"""What the check, audit and overhead tests share: the models and workloads whose answers are known
by construction, their small input, and the command line run in this process (its user code still
in a child), its exit code and --json document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from detprof.cli import app

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "tests" / "data" / "models" / "check_models.py"
WORKLOADS = REPO / "tests" / "data" / "workloads" / "user_workloads.py"
SMALL = ["--input-shape", "3,16,16", "--num-classes", "4"]
runner = CliRunner()


def invoke(*args: str) -> tuple[int, dict[str, Any]]:
    """``detprof ARGS --json``: its exit code (a verdict's: 0, 1 or 3) and its document."""
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code in (0, 1, 3), result.stderr
    return result.exit_code, json.loads(result.stdout)
