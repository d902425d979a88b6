"""Peak memory and time of reading a large real-layout trace, and what the caps stop.

A ~200 MB trace is built from tests/data/traces/a100_diff_control.json.gz (an A100 trace in
Kineto's layout) by repeating its events; each reading runs in a fresh process, which reports
its peak resident memory (ru_maxrss) and wall time. The cap is shown on the same file with
``--max-trace-mb`` below its size.

    python benchmarks/trace_memory.py [--copies 6] [--runs 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "tests" / "data" / "traces" / "a100_diff_control.json.gz"

MEASURE = """
import json, resource, sys, time
from detprof.kernels import load_trace
started = time.perf_counter()
activities = load_trace(sys.argv[1])
elapsed = time.perf_counter() - started
print(json.dumps({"events": len(activities.names), "parser": activities.parser, "seconds": elapsed,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BASELINE = """
import json, resource, sys
import detprof.kernels
print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def build_large_trace(copies: int, folder: Path) -> Path:
    """The source trace with its traceEvents array repeated ``copies`` times, in the file's own layout."""
    text = gzip.decompress(SOURCE.read_bytes())
    start = text.index(b'"traceEvents": [') + len(b'"traceEvents": [')
    end = text.rindex(b"]")
    events = text[start:end].rstrip()
    body = b",".join([events] * copies)
    path = folder / f"a100_diff_control_x{copies}.json"
    path.write_bytes(text[:start] + body + b"\n  " + text[end:])
    return path


def build_in_a_child(copies: int, folder: Path) -> Path:
    """build_large_trace in a child process: Linux carries a process's peak memory (ru_maxrss)
    over fork and exec, so the measuring processes must not descend from one that held the trace."""
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r}); from pathlib import Path; "
            f"from trace_memory import build_large_trace; print(build_large_trace({copies}, Path({str(folder)!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


def in_fresh_process(script: str, *args: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True,
                          cwd=REPO)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        trace = build_in_a_child(options.copies, Path(scratch))
        size_mib = trace.stat().st_size / 2**20
        baseline = in_fresh_process(BASELINE)["peak_mib"]
        print(f"trace: {size_mib:.0f} MiB, {options.copies} copies of {SOURCE.name}; "
              f"an interpreter with detprof.kernels imported peaks at {baseline:.0f} MiB")
        for run in range(options.runs):
            result = in_fresh_process(MEASURE, str(trace))
            print(f"run {run + 1}: {result['events']:,} GPU events ({result['parser']}) in {result['seconds']:.2f} s, "
                  f"peak {result['peak_mib']:.0f} MiB = {result['peak_mib'] / size_mib:.2f}x the file")
        capped = subprocess.run([sys.executable, "-m", "detprof.cli", "kernels", "--trace", str(trace),
                                 "--max-trace-mb", str(int(size_mib // 2))], capture_output=True, text=True, cwd=REPO)
        print(f"--max-trace-mb {int(size_mib // 2)}: exit {capped.returncode}: {capped.stderr.strip()}")


if __name__ == "__main__":
    main()
