"""A/A test of the measurement protocol: the same mode on both sides must give a ratio of 1.

For each model, runs ``detprof overhead --modes default,default`` ``--trials`` times through the
Python API (each trial a full adaptive measurement: pairs of fresh worker processes in balanced
order until the ratio's 95% CI is within ±``--precision`` or ``--max-time`` is spent). Per trial
it reports the ratio, its CI, whether the CI contains 1.0, the achieved half-width, the pairs it
took and the wall time; and, on the very same jobs, what two other estimators would have said:

- ``unpaired``: the earlier protocol's estimator, median of all steps of one side over the other's,
  with a cluster bootstrap over processes;
- ``paired-p10``: the paired t interval on each process's 10th-percentile step time instead of
  its median (a "low quantile" estimator that ignores slow spells inside a process).

Goal on the 2-core CPU machine: every trial within ±3% of 1.0 with 1.0 inside its 95% CI.

    python benchmarks/aa_test.py [--models resnet18,small-cnn] [--trials 10] [--precision 0.02]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

from detprof.runner import OverheadConfig, default_protocol, default_workload, measure_overhead
from detprof.runner.outcomes import OverheadResult
from detprof.runner.protocol import pairs_of
from detprof.stats import RatioEstimate, job_low_quantile, paired_ratio, unpaired_ratio

# The two settings of the issue: resnet18 at detprof's CPU defaults, and the small CNN at batch 32,
# 32x32, 30 timed steps after 5 warm-up steps (where the earlier protocol gave 0.79 to 1.24).
MODELS = {
    "resnet18": {"workload": {}, "protocol": {}},
    "small-cnn": {"workload": {"batch_size": 32, "image_size": 32}, "protocol": {"warmup_steps": 5,
                                                                                 "timed_steps": 30}},
}


def _row(estimate: RatioEstimate) -> dict[str, object]:
    return {"ratio": round(estimate.ratio, 4),
            "ci": None if not estimate.has_ci else [round(estimate.low or 0, 4), round(estimate.high or 0, 4)],
            "contains_1": estimate.contains(1.0), "within_3pct": abs(estimate.ratio - 1) <= 0.03,
            "half_width": None if estimate.half_width is None else round(estimate.half_width, 4)}


def estimators(result: OverheadResult) -> dict[str, dict[str, object]]:
    """The protocol's own estimate and the two alternatives, all on the trial's jobs."""
    pairs = pairs_of(result.jobs)
    assert result.ratio is not None
    return {"paired": _row(result.ratio),
            "unpaired": _row(unpaired_ratio([a for a, _ in pairs], [b for _, b in pairs])),
            "paired-p10": _row(paired_ratio(pairs, per_job=job_low_quantile))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet18,small-cnn")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--precision", type=float, default=None, help="target CI half-width (default: detprof's)")
    parser.add_argument("--max-time", type=float, default=300.0, help="seconds per trial (default 300)")
    args = parser.parse_args()
    summary = {}
    for model in args.models.split(","):
        setting = MODELS[model]
        workload = default_workload(model, on_gpu=False, **setting["workload"])
        protocol = replace(default_protocol(False, profile_steps=0, **setting["protocol"]), max_time_s=args.max_time)
        if args.precision is not None:
            protocol = replace(protocol, precision=args.precision)
        print(f"== A/A on CPU: {workload.describe()}, {protocol}", flush=True)
        trials = []
        for trial in range(args.trials):
            started = time.perf_counter()
            config = OverheadConfig(workload, protocol, ("default", "default"), "cpu", None, seed=trial)
            result = measure_overhead(config, "cpu", "cpu", trace_dir=None)
            row = {"model": model, "trial": trial, "pairs": result.precision.pairs,
                   "stopped_by": result.precision.stopped_by, "wall_s": round(time.perf_counter() - started, 1),
                   **estimators(result)}
            trials.append(row)
            print(json.dumps(row), flush=True)
        lines = {}
        for name in ("paired", "unpaired", "paired-p10"):
            rows = [t[name] for t in trials]
            good = sum(bool(r["contains_1"] and r["within_3pct"]) for r in rows)
            lines[name] = (f"{good}/{len(rows)} within ±3% with 1.0 in the CI; CI contains 1.0 in "
                           f"{sum(bool(r['contains_1']) for r in rows)}/{len(rows)}; max |ratio-1| "
                           f"{100 * max(abs(float(r['ratio']) - 1) for r in rows):.2f}%; median half-width "
                           f"{100 * statistics.median(float(r['half_width'] or 0) for r in rows):.2f}%")
        walls = [float(t["wall_s"]) for t in trials]
        summary[model] = lines
        print(f"-- {model}: pairs per trial {min(t['pairs'] for t in trials)}-{max(t['pairs'] for t in trials)}, "
              f"wall per trial median {statistics.median(walls):.0f} s (max {max(walls):.0f} s)")
        for name, line in lines.items():
            print(f"   {name:11s} {line}", flush=True)


if __name__ == "__main__":
    main()
