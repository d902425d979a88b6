"""Read-side views over the results store, shared by the CLI and (later) the HTML report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from detprof.documents import DOCUMENT_VERSION, DiffDocument, RunKernelsDocument, RunsDocument, TraceKernelsDocument
from detprof.errors import require
from detprof.kernels import TraceError, diff_tables, kernel_table, load_trace, top_kernels
from detprof.kernels.table import category_records, kernel_records, top_records
from detprof.kernels.trace import DEFAULT_MAX_TRACE_MB
from detprof.parse import is_whole_number
from detprof.store import ResultStore, StoreError, StoreLike, open_store

if TYPE_CHECKING:
    import pandas as pd

DIFF_ROWS = 15


def _kernel_mode(store: ResultStore, run_id: int, mode: str | None) -> tuple[str, list[str]]:
    """The mode whose kernels to use (default: the run's last one) and all modes with kernel rows."""
    available = store.kernel_modes(run_id)
    if not available:
        raise StoreError(f"run {run_id} has no kernel rows (profiling was off or failed); "
                         "rerun with --profile-steps >= 1")
    chosen = mode or available[-1]
    if chosen not in available:
        raise StoreError(f"mode {chosen!r} has no kernel rows in run {run_id}; available: {', '.join(available)}")
    return chosen, available


def kernel_report(db: StoreLike, run_id: int | None, mode: str | None, top: int,
                  framework: str | None = None) -> RunKernelsDocument:
    """Top-``top`` kernels of one mode of a stored run (default: the newest run with kernel rows, or
    the newest of ``framework``), and the diff between the run's two modes.

    Times are µs over the run's profiled steps; ``kernel_ms_per_step`` divides by their number
    (None for an imported trace that does not say how many steps it holds: ``kernel_ms_total``
    is then the whole trace's). ``mode`` defaults to the run's second mode (the treatment, e.g.
    ``deterministic``), or its only mode with kernel rows.
    """
    require(framework is None or run_id is None, "give --run or --framework, not both")
    with open_store(db) as store:
        if framework is not None:
            run_id = store.latest_run_id(framework)
        elif run_id is None:
            run_id = store.latest_run_with_kernels()
        summary = store.run_summary(run_id)
        run_id = int(summary["run_id"])
        chosen, available = _kernel_mode(store, run_id, mode)
        full = store.kernels(run_id, chosen)
        protocol = summary["protocol"]
        profile_steps = int(protocol["profile_steps"]) or 1
        steps_known = protocol.get("steps_known", True)  # measured runs know; imported traces may not
        total_ms = float(full["total_us"].sum()) / 1000.0
        report: RunKernelsDocument = {
            "document_version": DOCUMENT_VERSION,
"run_id": run_id, "arch": summary["arch"], "device": summary["device"], "mode": chosen, "top": top,
            "profile_steps": profile_steps if steps_known else None, "kernel_ms_total": total_ms,
            "kernel_ms_per_step": total_ms / profile_steps if steps_known else None,
            "kernels": top_kernels(full, top).to_dict(orient="records"),
            "diff": [], "diff_modes": None,
            "kernel_times_note": (summary.get("kernel_times_note") or "kernel times flagged unreliable (no reason "
                                  "stored)") if summary.get("kernel_times_reliable") is False else None,
        }
        if len(available) == 2:
            base, treat = (store.kernels(run_id, m) for m in available)
            report["diff_modes"] = available
            report["diff"] = diff_tables(base, treat).head(DIFF_ROWS).to_dict(orient="records")
        return report


def trace_report(path: str, top: int, scope: str = "steps", cpu_ops: bool = False,
                 max_trace_mb: float = DEFAULT_MAX_TRACE_MB) -> TraceKernelsDocument:
    """Top-``top`` kernels of any PyTorch profiler trace file (µs summed over the whole trace).

    ``cpu_ops`` lists a GPU program's CPU ops when its trace holds no GPU activity (otherwise
    that is an error). ``parser`` in the result says which reader ran (kineto-scan or json)."""
    activities = load_trace(path, scope, cpu_ops, max_trace_mb)
    records = kernel_records(activities.names, activities.dur_us)
    return {
        "document_version": DOCUMENT_VERSION, "trace": activities.source, "kind": activities.kind,
        "device": activities.device_name, "scope": scope,
        "top": top, "parser": activities.parser,
        "total_us": math.fsum(r["total_us"] for r in records), "events": len(activities.names),
        "kernels": top_records(records, top), "categories": category_records(records),
    }


def _kernel_source(spec: str, db: StoreLike, scope: str,
                   max_trace_mb: float = DEFAULT_MAX_TRACE_MB) -> tuple[str, pd.DataFrame]:
    """A kernel table from ``RUN``, ``RUN:MODE`` or a trace file path, with a label for it."""
    run, _, mode = spec.partition(":")
    if is_whole_number(run):
        with open_store(db) as store:
            chosen, _ = _kernel_mode(store, int(run), mode or None)
            return f"run {run}:{chosen}", store.kernels(int(run), chosen)
    if not Path(spec).exists():
        raise TraceError(f"{spec!r} is neither a run id (N or N:MODE) nor an existing trace file")
    return Path(spec).name, kernel_table(load_trace(spec, scope, max_trace_mb=max_trace_mb).events)


def kernel_diff(a: str, b: str, db: StoreLike, top: int, scope: str = "steps",
                max_trace_mb: float = DEFAULT_MAX_TRACE_MB) -> DiffDocument:
    """Kernels added, removed and changed from ``a`` to ``b`` (runs or trace files), largest |Δ| first.

    Times are µs summed over each side's profiled steps (runs) or whole trace (files).
    """
    label_a, table_a = _kernel_source(a, db, scope, max_trace_mb)
    label_b, table_b = _kernel_source(b, db, scope, max_trace_mb)
    diff = diff_tables(table_a, table_b)
    return {
        "document_version": DOCUMENT_VERSION, "a": label_a, "b": label_b,
        "total_us_a": float(table_a["total_us"].sum()),
        "total_us_b": float(table_b["total_us"].sum()),
        "counts": {status: int((diff["status"] == status).sum()) for status in ("added", "removed", "changed")},
        "diff": diff.head(top).to_dict(orient="records"),
    }


def runs_document(db: StoreLike) -> RunsDocument:
    """What ``runs --json`` prints: ``runs``, one record per stored run, newest first (times UTC,
    ratios as treatment over baseline), and ``skipped``: the damaged rows left out, named."""
    with open_store(db) as store:
        frame = store.list_runs()
        skipped = list(store.damaged)
    return {"document_version": DOCUMENT_VERSION, "runs": frame.to_dict(orient="records"), "skipped": skipped}

