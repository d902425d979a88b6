"""Kernel time per step from the profiled jobs: each job's kernel table (or why it has none), each
mode's kernel ms per profiled step, and the paired kernel ratio over the profiled pairs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from detprof.kernels import KernelLessGpuTraceError, TraceError, kernel_table, load_trace
from detprof.runner.outcomes import JobOutcome
from detprof.stats import RatioEstimate, paired_ratio

NO_GPU_KERNELS = ("the profiled pass recorded no GPU kernels (CUPTI gave no activity); kernel time is not "
                  "reported rather than replaced by CPU op time")


@dataclass(frozen=True)
class JobKernels:
    """The kernel table of one profiled job (µs over its profiled steps), or the reason it has none."""

    table: pd.DataFrame | None
    reason: str | None


def job_kernels(outcome: JobOutcome, on_gpu: bool) -> JobKernels:
    """Read one profiled job's trace into its per-kernel table."""
    try:
        activities = load_trace(outcome.trace_path or "")
    except KernelLessGpuTraceError:
        return JobKernels(None, NO_GPU_KERNELS)
    except TraceError as error:
        return JobKernels(None, f"the profiled trace could not be read: {error}")
    if on_gpu and activities.kind != "gpu":
        return JobKernels(None, NO_GPU_KERNELS)
    return JobKernels(kernel_table(activities.events), None)


class KernelReader:
    """Kernel tables of profiled jobs, each trace read once however often a run is summarised."""

    def __init__(self, on_gpu: bool) -> None:
        self.on_gpu = on_gpu
        self._read: dict[str, JobKernels] = {}

    def __call__(self, outcome: JobOutcome) -> JobKernels | None:
        """The job's kernels; None for a job that was not profiled or whose trace is missing."""
        if not (outcome.ok and outcome.trace_path and Path(outcome.trace_path).exists()):
            return None
        if outcome.trace_path not in self._read:
            self._read[outcome.trace_path] = job_kernels(outcome, self.on_gpu)
        return self._read[outcome.trace_path]


def kernel_ms_per_step(table: pd.DataFrame, profile_steps: int) -> float:
    """Kernel time of one profiled job in ms per step (the table holds µs over ``profile_steps`` steps)."""
    return float(table["total_us"].sum()) / profile_steps / 1000.0


def mode_kernels(outcomes: list[JobOutcome], read: KernelReader, profile_steps: int
                  ) -> tuple[pd.DataFrame | None, float | None, list[tuple[JobOutcome, float]], str | None]:
    """A mode's kernel table and time per step (ms): those of its median profiled job (the lower
    median for an even count), with every profiled job and its kernel ms per step, and, when there
    are none, why."""
    read_jobs = [(o, k) for o in outcomes if (k := read(o)) is not None]
    profiled = [(o, k.table) for o, k in read_jobs if k.table is not None]
    if not profiled or profile_steps <= 0:
        if read_jobs:
            return None, None, [], next(k.reason for _, k in read_jobs if k.reason)
        return None, None, [], ("no profiled job of this mode succeeded" if any(o.spec.profile for o in outcomes)
                                else "not profiled (--profile-steps 0)")
    ranked = sorted(((o, t, kernel_ms_per_step(t, profile_steps)) for o, t in profiled), key=lambda row: row[2])
    _, table, kernel_ms = ranked[(len(ranked) - 1) // 2]
    return table, kernel_ms, [(o, ms) for o, _, ms in ranked], None


def kernel_ratio_of(outcomes: list[JobOutcome], read: KernelReader, profile_steps: int) -> RatioEstimate | None:
    """Kernel time per step, side 1 over side 0, paired over the pairs whose two jobs were both
    profiled (geometric mean, with a Student-t 95% CI from MIN_PAIRS_FOR_CI pairs on, as for step time)."""
    by_pair: dict[int, dict[int, float]] = {}
    for outcome in outcomes:
        kernels = read(outcome)
        if kernels is not None and kernels.table is not None and profile_steps > 0:
            by_pair.setdefault(outcome.spec.repeat, {})[outcome.spec.side] = kernel_ms_per_step(kernels.table,
                                                                                               profile_steps)
    pairs = [([sides[0]], [sides[1]]) for _, sides in sorted(by_pair.items())
             if 0 in sides and 1 in sides and sides[0] > 0 and sides[1] > 0]
    return paired_ratio(pairs) if pairs else None
