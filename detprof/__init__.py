"""detprof: what deterministic training costs and what it buys.

The facade: ``from detprof import run_overhead, run_check, ResultStore, load_trace, ...`` works
from a plain script. Every name is imported on first use, so ``import detprof`` costs nothing and
the trace commands still start without torch, pandas or numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> the module that defines it.
_FACADE = {
    "run_overhead": "detprof.overhead", "run_ablation": "detprof.overhead",
    "run_check": "detprof.check.run", "run_audit": "detprof.check.run",
    "run_batch_invariance": "detprof.check.run", "run_advise": "detprof.check.advise",
    "run_script_check": "detprof.check.script",
    "run_sweep": "detprof.sweep.run", "sweep_status": "detprof.sweep.run",
    "run_stability": "detprof.stability.experiment", "run_inference_grid": "detprof.infer.run",
    "run_inference_cost": "detprof.infer.cost", "run_sampler_trainer": "detprof.infer.mismatch",
    "ResultStore": "detprof.store.db", "merge_store": "detprof.store.transfer", "export_runs": "detprof.store.transfer",
    "load_trace": "detprof.kernels.trace", "kernel_table": "detprof.kernels.table",
    "top_kernels": "detprof.kernels.table", "diff_tables": "detprof.kernels.table",
    "import_trace": "detprof.trace_import", "build_report": "detprof.report",
    "DetprofError": "detprof.errors", "WorkloadRequest": "detprof.workload.request",
    "UserWorkload": "detprof.workload.user", "step": "detprof.marker",
}

if TYPE_CHECKING:
    from detprof.check.advise import run_advise
    from detprof.check.run import run_audit, run_batch_invariance, run_check
    from detprof.check.script import run_script_check
    from detprof.errors import DetprofError
    from detprof.infer.cost import run_inference_cost
    from detprof.infer.mismatch import run_sampler_trainer
    from detprof.infer.run import run_inference_grid
    from detprof.kernels.table import diff_tables, kernel_table, top_kernels
    from detprof.kernels.trace import load_trace
    from detprof.marker import step
    from detprof.overhead import run_ablation, run_overhead
    from detprof.report import build_report
    from detprof.stability.experiment import run_stability
    from detprof.store.db import ResultStore
    from detprof.store.transfer import export_runs, merge_store
    from detprof.sweep.run import run_sweep, sweep_status
    from detprof.trace_import import import_trace
    from detprof.workload.request import WorkloadRequest
    from detprof.workload.user import UserWorkload


def __getattr__(name: str) -> Any:
    if name in _FACADE:
        value = getattr(importlib.import_module(_FACADE[name]), name)
        globals()[name] = value  # imported once
        return value
    raise AttributeError(f"module 'detprof' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_FACADE])


__all__ = ["DetprofError", "ResultStore", "UserWorkload", "WorkloadRequest", "build_report", "diff_tables",
           "export_runs", "import_trace", "kernel_table", "load_trace", "merge_store", "run_ablation", "run_advise",
           "run_audit", "run_batch_invariance", "run_check", "run_inference_cost", "run_inference_grid",
           "run_overhead", "run_sampler_trainer", "run_script_check", "run_stability", "run_sweep", "step",
           "sweep_status",
           "top_kernels"]  # the same names as _FACADE (tests/test_facade.py checks it)
