"""A/A test of the measurement protocol: the same mode on both sides must give a ratio of 1.

Runs ``detprof overhead --modes default,default`` several times through the Python API (each a
full set of fresh worker processes, interleaved) and reports each ratio, its 95% CI, whether the
CI contains 1.0, and the wall time. Goal on the 2-core CPU machine: |ratio - 1| <= 3% with 1.0
inside the CI.

    python benchmarks/aa_test.py [--arch resnet18] [--trials 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

from detprof.runner import OverheadConfig, default_protocol, default_workload, measure_overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per worker (default: detprof's)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    workload = default_workload(args.arch, on_gpu=False, batch_size=args.batch_size)
    overrides = {"profile_steps": 0, "repeats": args.repeats, "timed_steps": args.steps}
    if args.threads:
        overrides["cpu_threads"] = args.threads
    protocol = default_protocol(False, **overrides)
    print(f"A/A on CPU: {workload.describe()}, {protocol}")
    rows = []
    for trial in range(args.trials):
        started = time.perf_counter()
        config = OverheadConfig(workload, protocol, ("default", "default"), "cpu", None, seed=trial)
        result = measure_overhead(config, "cpu", "cpu", trace_dir=None)
        wall = time.perf_counter() - started
        r = result.ratio
        assert r is not None
        row = {"trial": trial, "ratio": round(r.ratio, 4), "ci": [round(r.low, 4), round(r.high, 4)],
               "ci_contains_1": r.contains(1.0), "within_3pct": abs(r.ratio - 1) <= 0.03,
               "step_ms": [round(m.step_ms or 0, 2) for m in result.modes],
               "iqr_over_median": [round((m.step_ms_iqr or 0) / (m.step_ms or 1), 3) for m in result.modes],
               "wall_s": round(wall, 1)}
        rows.append(row)
        print(json.dumps(row))
    ok = sum(r["ci_contains_1"] and r["within_3pct"] for r in rows)
    print(f"{ok}/{len(rows)} trials within ±3% of 1.0 with 1.0 inside the 95% CI")


if __name__ == "__main__":
    main()
