"""Shared fixtures. Real traces live in tests/data/traces (PyTorch profiler, A100 and V100; from
Holistic Trace Analysis' test data, MIT licence, see the README there)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]  # tests/test_ci_plugin.py runs detprof's pytest plugin in pytest's own harness

REPO = Path(__file__).resolve().parents[1]
TRACES = REPO / "tests" / "data" / "traces"

# pytest-xdist's workers inherit COLUMNS=80 and LINES=24 (execnet sets them), which a command run
# off a terminal reads as a width to wrap to: drop them here, before detprof's consoles are made,
# so that every test sees the same output whether it runs in a worker, a terminal or a pipe (a
# test that wants a width passes its own).
for _size in ("COLUMNS", "LINES"):
    os.environ.pop(_size, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def results_database_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command run without --db stores to ./.detprof/results.sqlite; in a test, "." is the
    test's own tmp_path, so that no test writes to the developer's store (child processes inherit it)."""
    monkeypatch.setenv("DETPROF_DB", str(tmp_path / ".detprof" / "results.sqlite"))


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    """The folder of real A100/V100 traces kept in the repository."""
    return TRACES


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.sqlite"


@pytest.fixture()
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount a tmpfs of the given size (``"1m"``) under tmp_path and return its folder: a disk that
    fills up, or that can be remounted read-only. Needs the right to mount (root in a container
    that allows it, as here and in CI); skips otherwise. Unmounted at the end."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "none", str(folder)],
                                               capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_up(folder: Path) -> Path:
    """Write a file in ``folder`` until its disk has no room left; returns the file (delete it to
    make room again)."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as stream:
        for size in (1 << 16, 4096, 1):
            try:
                while stream.write(b"\0" * size):
                    pass
            except OSError:  # no room for a block of this size: try smaller ones
                continue
    return filler
