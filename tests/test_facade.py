"""The facade: ``from detprof import ...`` from a plain script, with nothing heavy imported before use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TRACES = Path(__file__).parent / "data" / "traces"

SCRIPT = f"""
import sys
import detprof
assert not {{"torch", "pandas", "numpy"}} & set(sys.modules), "import detprof loaded a heavy module"
from detprof import (run_overhead, run_check, run_audit, run_advise, run_sweep, run_stability, ResultStore,
                     load_trace, kernel_table, import_trace)
assert "torch" not in sys.modules  # naming them imports their modules, not torch
activities = load_trace({str(TRACES / "a100_alexnet_train.json.gz")!r})
table = kernel_table(activities.events)
stored = import_trace({str(TRACES / "a100_alexnet_train.json.gz")!r}, db=sys.argv[1])
with ResultStore(sys.argv[1]) as store:
    print(len(table), round(float(table["total_us"].sum()), 1), store.latest_run_id(), stored["kernels"])
"""


def test_the_facade_works_from_a_plain_script(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "r.sqlite")], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    kernels, total_us, run_id, stored = done.stdout.split()
    # The AlexNet trace's 18 kernels and 66.20 ms, as `detprof kernels --trace` gives them.
    assert int(kernels) == int(stored) == 18 and float(total_us) == 66_203.0 and run_id == "1"


def test_the_facade_lists_what_it_serves() -> None:
    import detprof

    assert detprof.__all__ == sorted(detprof._FACADE)
    assert all(callable(getattr(detprof, name)) for name in detprof.__all__)


def test_a_name_the_facade_does_not_have_is_an_import_error() -> None:
    done = subprocess.run([sys.executable, "-c", "from detprof import run_everything"], capture_output=True, text=True)
    assert done.returncode == 1 and "cannot import name 'run_everything' from 'detprof'" in done.stderr
