"""Does the CI of a CPU overhead ratio cover the run-to-run spread? Runs the same comparison in N
separate measurements (each its own fork server, hence its own memory layout) and prints each
run's ratio and 95% CI, then how many CIs contain the median of all runs.

    python benchmarks/layout_effect.py --runs 8                 # jobs forked, each shifting its layout
    python benchmarks/layout_effect.py --runs 4 --spawn         # every job a fresh interpreter (slow)

Before jobs shifted their own memory layout (detprof.backends.torch.worker.shift_memory_layout), all
jobs of a mode shared the fork server's layout, and runs of small-cnn gave tight CIs that
disagreed with each other (results in benchmarks/results/layout_effect_cpu_2core.txt).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--arch", default="small-cnn")
    parser.add_argument("--modes", default="default,deterministic-algorithms")
    parser.add_argument("--max-time", type=float, default=25.0)
    parser.add_argument("--spawn", action="store_true", help="a fresh interpreter per job instead of a fork")
    args = parser.parse_args()
    import detprof.process.processes as processes
    from detprof.cli.lists import parse_modes
    from detprof.overhead import run_overhead

    if args.spawn:
        processes._context = lambda preload=None: multiprocessing.get_context("spawn")  # type: ignore[assignment]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(args.runs):
            # A new fork server per run, as separate invocations of the command line would have.
            processes.restart_fork_server()
            doc = run_overhead(args.arch, gpu="cpu", db=Path(scratch, "r.sqlite"), modes=parse_modes(args.modes),
                               max_time_s=args.max_time)
            ci = doc["ratio_ci"] or [float("nan")] * 2
            steps = [m["step_ms"] for m in doc["modes"]]
            rows.append((doc["ratio"], ci))
            print(f"run {run + 1}: ratio {doc['ratio']:.3f} (95% CI {ci[0]:.3f}-{ci[1]:.3f}), {doc['ratio_pairs']} "
                  f"pairs, step ms {steps[0]:.2f} / {steps[1]:.2f}", flush=True)
    middle = statistics.median(r for r, _ in rows)
    covered = sum(1 for _, (low, high) in rows if low <= middle <= high)
    print(f"{args.arch} {args.modes}, {'spawn' if args.spawn else 'fork'}: median of {len(rows)} run ratios "
          f"{middle:.3f}; {covered} of {len(rows)} CIs contain it; run ratios {min(r for r, _ in rows):.3f} to "
          f"{max(r for r, _ in rows):.3f}")


if __name__ == "__main__":
    main()
