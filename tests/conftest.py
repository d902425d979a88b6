"""Shared fixtures. Real traces live in tests/data/traces (PyTorch profiler, A100 and V100; from
Holistic Trace Analysis' test data, MIT licence, see the README there)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRACES = REPO / "tests" / "data" / "traces"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    """The folder of real A100/V100 traces kept in the repository."""
    return TRACES


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.sqlite"
