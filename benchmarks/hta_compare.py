"""detprof vs Holistic Trace Analysis (HTA) on the same traces: per-kernel totals and speed.

For each trace, both tools load the file and produce a per-kernel breakdown, timed in their own
process with imports excluded, ``--runs`` times each, interleaved; the median is reported, with
the range of the runs beside it. HTA runs as
``TraceAnalysis(..., include_last_profiler_step=True).get_gpu_kernel_breakdown(...)`` in the
interpreter given by ``--hta-python`` (PyPI package ``traceinsight``; it pulls in JupyterLab, so
keep it in its own virtual environment). detprof's caches (kernel catalog) are cleared before
every run, so each run is a cold one.

Totals are compared per kernel name. HTA rounds each duration down to whole microseconds; on
traces with integer durations the totals must be equal, on others the exact sum is detprof's.

``--end-to-end`` times what a user waits for instead: a fresh process each, from interpreter start
to the table printed. detprof runs its command line (``python -m detprof.cli kernels --trace FILE
--top 20``); HTA runs the same analysis as above in a fresh interpreter, its imports included.

    python -m venv /tmp/hta && /tmp/hta/bin/pip install traceinsight
    python benchmarks/hta_compare.py --hta-python /tmp/hta/bin/python [--runs 5] [TRACE ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from detprof.kernels import kernel_table, load_catalog, load_trace

SHARED_TRACES = Path(__file__).resolve().parents[1] / "tests" / "data" / "traces"

HTA_SNIPPET = """
import json, logging, sys, time, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)
from hta.trace_analysis import TraceAnalysis
path, runs = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(runs):
    started = time.perf_counter()
    analysis = TraceAnalysis(trace_files={0: path}, trace_dir="/tmp", include_last_profiler_step=True)
    _, metrics = analysis.get_gpu_kernel_breakdown(visualize=False, duration_ratio=1.0, num_kernels=10**9)
    times.append(time.perf_counter() - started)
totals = {str(n): float(s) for n, s in zip(metrics["name"], metrics["sum (us)"])}
print(json.dumps({"times": times, "totals": totals}))
"""


def detprof_run(path: Path) -> tuple[float, dict[str, float]]:
    """One cold detprof load + breakdown: (seconds, {kernel name: total µs})."""
    load_catalog.cache_clear()
    started = time.perf_counter()
    table = kernel_table(load_trace(path).events)
    elapsed = time.perf_counter() - started
    return elapsed, dict(zip(table["name"], table["total_us"], strict=True))


def hta_runs(python: str, path: Path, runs: int) -> tuple[list[float], dict[str, float]]:
    process = subprocess.run([python, "-c", HTA_SNIPPET, str(path), str(runs)], capture_output=True, text=True)
    if process.returncode != 0:
        last = (process.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"HTA failed on {path} (exit {process.returncode}): {last}")
    document = json.loads(process.stdout.strip().splitlines()[-1])
    return document["times"], document["totals"]


HTA_END_TO_END = """
import logging, sys, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)
from hta.trace_analysis import TraceAnalysis
analysis = TraceAnalysis(trace_files={0: sys.argv[1]}, trace_dir="/tmp", include_last_profiler_step=True)
_, metrics = analysis.get_gpu_kernel_breakdown(visualize=False, duration_ratio=1.0, num_kernels=10**9)
print(metrics.head(20).to_string())
"""


def wall_time(command: list[str]) -> float:
    """Seconds from starting ``command`` to its exit; exits the benchmark if the command fails."""
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        last = (process.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"{' '.join(command[:3])} ... failed (exit {process.returncode}): {last}")
    return elapsed


def end_to_end(traces: list[Path], hta_python: str, runs: int) -> None:
    """Fresh-process wall times, interleaved: detprof's command line against HTA's analysis."""
    print(f"{'trace':28s} {'detprof s':>9s} {'(range)':>11s} {'HTA s':>7s} {'(range)':>11s} {'speed-up':>8s}")
    for path in traces:
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(runs):
            theirs.append(wall_time([hta_python, "-c", HTA_END_TO_END, str(path)]))
            ours.append(wall_time([sys.executable, "-m", "detprof.cli", "kernels", "--trace", str(path), "--top",
                                   "20"]))
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"{path.name:28s} {a:9.2f} {min(ours):5.2f}-{max(ours):<5.2f} {b:7.2f} {min(theirs):5.2f}-"
              f"{max(theirs):<5.2f} {b / a:7.1f}x", flush=True)


def compare(ours: dict[str, float], theirs: dict[str, float]) -> dict[str, object]:
    common = set(ours) & set(theirs)
    worst = max((abs(ours[k] - theirs[k]) for k in common), default=0.0)
    return {"kernels_detprof": len(ours), "kernels_hta": len(theirs), "in_both": len(common),
            "max_abs_total_diff_us": worst, "equal": worst == 0.0 and len(common) == len(ours) == len(theirs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("traces", nargs="*", type=Path)
    parser.add_argument("--hta-python", default=sys.executable, help="interpreter with traceinsight installed")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--end-to-end", action="store_true", help="fresh-process wall time of each tool")
    args = parser.parse_args()
    # absolute paths: HTA joins a relative trace path onto its trace_dir
    traces = [path.resolve() for path in args.traces] or sorted(SHARED_TRACES.glob("*.json.gz"))
    if args.end_to_end:
        end_to_end(traces, args.hta_python, args.runs)
        return
    print(f"{'trace':28s} {'detprof ms':>10s} {'(range)':>11s} {'HTA ms':>8s} {'(range)':>13s} {'speed-up':>8s}"
          "  totals")
    for path in traces:
        hta_times: list[float] = []
        ours_times: list[float] = []
        hta_totals: dict[str, float] = {}
        ours: dict[str, float] = {}
        for _ in range(args.runs):  # interleave: one HTA run, one detprof run
            times, hta_totals = hta_runs(args.hta_python, path, 1)
            hta_times += times
            elapsed, ours = detprof_run(path)
            ours_times.append(elapsed)
        a, b = statistics.median(ours_times), statistics.median(hta_times)
        check = compare(ours, hta_totals)
        verdict = "equal" if check["equal"] else json.dumps(check)
        ours_range = f"{min(ours_times) * 1000:.0f}-{max(ours_times) * 1000:.0f}"
        hta_range = f"{min(hta_times) * 1000:.0f}-{max(hta_times) * 1000:.0f}"
        print(f"{path.name:28s} {a * 1000:10.0f} {ours_range:>11s} {b * 1000:8.0f} {hta_range:>13s} {b / a:7.1f}x"
              f"  {verdict}")


if __name__ == "__main__":
    main()
