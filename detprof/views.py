"""Read-side views over the results store, shared by the CLI and (later) the HTML report."""

from __future__ import annotations

from typing import Any

from detprof.kernels import diff_tables, top_kernels
from detprof.store import ResultStore, StoreError

DIFF_ROWS = 15


def kernel_report(db: str | None, run_id: int | None, mode: str | None, top: int) -> dict[str, Any]:
    """Top-``top`` kernels of one mode of a stored run, and the diff between the run's two modes.

    Times are µs over the run's profiled steps; ``kernel_ms_per_step`` divides by their number.
    ``mode`` defaults to the run's second mode (the treatment, e.g. ``deterministic``).
    """
    store = ResultStore(db)
    try:
        summary = store.run_summary(run_id)
        run_id = int(summary["run_id"])
        available = store.kernel_modes(run_id)
        if not available:
            raise StoreError(f"run {run_id} has no kernel rows (profiling was off or failed); "
                             "rerun with --profile-steps >= 1")
        chosen = mode or available[-1]
        if chosen not in available:
            raise StoreError(f"mode {chosen!r} has no kernel rows in run {run_id}; available: {', '.join(available)}")
        full = store.kernels(run_id, chosen)
        profile_steps = int(summary["protocol"]["profile_steps"]) or 1
        report: dict[str, Any] = {
            "run_id": run_id, "arch": summary["arch"], "device": summary["device"], "mode": chosen, "top": top,
            "profile_steps": profile_steps,
            "kernel_ms_per_step": float(full["total_us"].sum()) / profile_steps / 1000.0,
            "kernels": top_kernels(full, top).to_dict(orient="records"),
            "diff": [], "diff_modes": None,
        }
        if len(available) == 2:
            base, treat = (store.kernels(run_id, m) for m in available)
            report["diff_modes"] = available
            report["diff"] = diff_tables(base, treat).head(DIFF_ROWS).to_dict(orient="records")
        return report
    finally:
        store.close()
