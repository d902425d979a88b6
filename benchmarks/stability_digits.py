"""The four noise variants on digits (small CNN, CPU): 10 runs each, measures and wall time.

Trains into a fresh, throw-away database, so every run is timed. Goal on the 2-core CPU machine:
4 variants x 10 runs in under 5 minutes. Prints one JSON line per variant, then a Markdown table
for the README.

    python benchmarks/stability_digits.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from detprof.stability import run_stability

VARIANTS = ("algo+impl", "algo", "impl", "control")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    rows = []
    started_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for variant in VARIANTS:
            started = time.perf_counter()
            s = run_stability("digits", variant, args.runs, db=str(Path(scratch, "results.sqlite")))
            wall = time.perf_counter() - started
            row = {"variant": variant, "mode": s["mode"], "runs": s["runs"], "accuracy_mean": s["accuracy_mean"],
                   "accuracy_std": s["accuracy_std"], "churn": s["churn"], "churn_ci": s.get("churn_ci"),
                   "l2": s["l2"], "per_class_std_max": s["per_class_std_max"], "wall_s": round(wall, 1)}
            rows.append(row)
            print(json.dumps(row))
    total = time.perf_counter() - started_all
    print(f"\n4 variants x {args.runs} runs: {total:.0f} s (goal < 300 s)\n")
    print("| variant | mode | runs | accuracy mean | accuracy std | churn (95% CI) | L2 | max per-class std | wall |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ci = r["churn_ci"] or [0, 0]
        print(f"| {r['variant']} | {r['mode']} | {r['runs']} | {100 * r['accuracy_mean']:.2f}% | "
              f"{100 * r['accuracy_std']:.2f} pp | {100 * r['churn']:.2f}% ({100 * ci[0]:.2f}-{100 * ci[1]:.2f}) | "
              f"{r['l2']:.4f} | {100 * r['per_class_std_max']:.2f} pp | {r['wall_s']:.0f} s |")


if __name__ == "__main__":
    main()
