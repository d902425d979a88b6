"""Runner: one fresh process per (arch, mode, repeat); warm-up, timed steps, profiled pass.

The launcher (pandas, scipy) is imported lazily so that a worker process, which imports
``detprof.runner.worker``, starts with torch alone.
"""

from __future__ import annotations

from typing import Any

from detprof.runner.config import (
    CPU_DEFAULTS,
    GPU_DEFAULTS,
    JobSpec,
    OverheadConfig,
    Protocol,
    Workload,
    default_protocol,
    default_workload,
    plan_jobs,
)

_LAUNCHER_NAMES = ("JobOutcome", "ModeSummary", "OverheadResult", "measure_overhead")


def __getattr__(name: str) -> Any:
    if name in _LAUNCHER_NAMES:
        from detprof.runner import launcher

        return getattr(launcher, name)
    raise AttributeError(f"module 'detprof.runner' has no attribute {name!r}")


__all__ = ["CPU_DEFAULTS", "GPU_DEFAULTS", "JobOutcome", "JobSpec", "ModeSummary", "OverheadConfig",
           "OverheadResult", "Protocol", "Workload", "default_protocol", "default_workload", "measure_overhead",
           "plan_jobs"]
