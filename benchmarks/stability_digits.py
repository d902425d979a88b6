"""The four noise variants on digits (small CNN, CPU): 10 runs each, measures, wall time, and the
tool's own cost against a bare training loop.

The tool's side trains into a fresh, throw-away database through ``run_stability`` (a fresh process
per run, data loaded in each, outputs stored, measures recomputed from what was stored). The bare
side trains the very same 40 models (same recipe, seeds and determinism toggles, one thread) in
this process, one after another, with the data loaded once; it also checks that it got the same
predictions as the tool. The ratio tool / bare is what detprof costs on top of the training
itself. Goal on the 2-core CPU machine: at most 1.5x.

    python benchmarks/stability_digits.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from detprof.stability import run_stability

VARIANTS = ("algo+impl", "algo", "impl", "control")


def bare_loop(runs: int) -> tuple[float, dict[str, list[np.ndarray]]]:
    """Seconds to train the same models in this process, and their test-set predictions per variant."""
    import torch

    from detprof.backends.torch.stability_train import train_model
    from detprof.backends.torch.switches import apply_toggles
    from detprof.modes import Toggles, toggles_for
    from detprof.stability.data import load_task
    from detprof.stability.experiment import DEFAULT_RECIPES
    from detprof.stability.variants import resolve_variant, source_seeds

    torch.set_num_threads(1)
    started = time.perf_counter()
    data = load_task("digits")
    predictions: dict[str, list[np.ndarray]] = {}
    for name in VARIANTS:
        variant = resolve_variant(name)
        toggles = toggles_for(variant.mode)
        apply_toggles(Toggles(**toggles.as_dict()))
        predictions[name] = [
            train_model({"recipe": asdict(DEFAULT_RECIPES["digits"]), "seeds": source_seeds(variant, run),
                         "device": "cpu"}, data)["predictions"] for run in range(runs)]
    return time.perf_counter() - started, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    rows = []
    started_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch, "results.sqlite")
        for variant in VARIANTS:
            started = time.perf_counter()
            s = run_stability("digits", variant, args.runs, db=str(db), gpu="cpu")
            wall = time.perf_counter() - started
            row = {"variant": variant, "mode": s["mode"], "runs": s["runs"], "accuracy_mean": s["accuracy_mean"],
                   "accuracy_std": s["accuracy_std"], "churn": s["churn"], "churn_ci": s.get("churn_ci"),
                   "l2": s["l2"], "per_class_std_max": s["per_class_std_max"], "experiment": s["experiment"],
                   "paired_with": s["paired_with"], "wall_s": round(wall, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        tool = time.perf_counter() - started_all
        bare, bare_predictions = bare_loop(args.runs)
        same = all(np.array_equal(np.load(db.parent / "stability" / r["experiment"] / f"run{i}" / "predictions.npy"),
                                  bare_predictions[r["variant"]][i]) for r in rows for i in range(args.runs))
    print(f"\n4 variants x {args.runs} runs: {tool:.0f} s with detprof, {bare:.0f} s as a bare in-process loop of "
          f"the same training: {tool / bare:.2f}x (goal <= 1.5x); the bare loop reproduced every model's "
          f"predictions: {'yes' if same else 'NO'}\n")
    print("| variant | mode | runs | accuracy mean | accuracy std | churn (95% CI) | L2 | max per-class std | wall |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ci = r["churn_ci"] or [0, 0]
        print(f"| {r['variant']} | {r['mode']} | {r['runs']} | {100 * r['accuracy_mean']:.2f}% | "
              f"{100 * r['accuracy_std']:.2f} pp | {100 * r['churn']:.2f}% ({100 * ci[0]:.2f}-{100 * ci[1]:.2f}) | "
              f"{r['l2']:.4f} | {100 * r['per_class_std_max']:.2f} pp | {r['wall_s']:.0f} s |")


if __name__ == "__main__":
    main()
