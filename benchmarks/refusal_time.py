"""How long bad input takes to be refused: every bad name and number of the test suite's
``BEFORE_ANY_FRAMEWORK`` list (tests/test_bad_input.py), each run as a user would run it, in a fresh
``python -m detprof.cli`` process from the repository root, several times. Reports each case's
median and worst wall time and the worst over all; the goal is under 2 s on the 2-core CPU machine.

    python benchmarks/refusal_time.py [--trials 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cases() -> list[list[str]]:
    """The test suite's list, read from its file (one list for the test and the benchmark)."""
    spec = importlib.util.spec_from_file_location("bad_input_cases", ROOT / "tests" / "test_bad_input.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.BEFORE_ANY_FRAMEWORK)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    worst_overall = 0.0
    with tempfile.TemporaryDirectory() as scratch:
        for case in cases():
            walls = []
            for _ in range(args.trials):
                started = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "detprof.cli", *case, "--db", f"{scratch}/r.sqlite"],
                                      capture_output=True, text=True, cwd=ROOT, timeout=120)
                walls.append(time.perf_counter() - started)
                if done.returncode != 2:
                    raise SystemExit(f"{' '.join(case)}: exit {done.returncode}, not 2: {done.stderr[-300:]}")
            worst_overall = max(worst_overall, max(walls))
            print(f"{statistics.median(walls):5.2f} s median, {max(walls):5.2f} s worst  detprof {' '.join(case)}")
    print(f"worst refusal over {len(cases())} cases x {args.trials} trials: {worst_overall:.2f} s (goal < 2 s)")


if __name__ == "__main__":
    main()
