"""What an overhead measurement produced: each job's outcome, each mode's summary, the precision
reached and the whole result; and what a job that wrote no result is called (killed, crashed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from detprof.process.child import how_it_ended
from detprof.process.results import last_line
from detprof.runner.config import JobSpec, OverheadConfig
from detprof.stats import RatioEstimate


@dataclass
class JobOutcome:
    """What one worker process produced. Times in ms, memory in bytes."""

    spec: JobSpec
    status: str  # ok | failed | oom | crashed | killed | timeout
    step_ms: list[float] = field(default_factory=list)
    profiled_step_ms: list[float] = field(default_factory=list)  # the profiled pass's steps (empty: not timed)
    error: str | None = None
    peak_mem_bytes: int | None = None
    peak_mem_warmup_bytes: int | None = None
    peak_mem_kind: str | None = None
    nondeterministic_ops: list[str] = field(default_factory=list)
    applied_toggles: dict[str, Any] = field(default_factory=dict)
    switches_changed: list[str] = field(default_factory=list)  # "name set -> found", read after the last step
    environment: dict[str, Any] = field(default_factory=dict)
    gpu_monitor: dict[str, Any] | None = None
    trace_path: str | None = None
    wall_s: float | None = None
    state_sha256: str | None = None  # fingerprint of parameters and buffers after the timed steps
    attention_backends: list[str] | None = None  # SDPA backends that ran (None: not observed)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class ModeSummary:
    """One mode's figures over its successful repeats. Step and kernel times in ms per step,
    memory in bytes. ``determinism`` is what was observed (see ``observed_determinism``)."""

    mode: str
    toggles: dict[str, Any]
    repeats_ok: int
    repeats_failed: int
    step_ms: float | None
    step_ms_iqr: float | None
    noisy: bool | None
    kernel_ms: float | None
    kernel_ms_reason: str | None
    kernel_coverage: float | None  # kernel time over the profiled steps' wall time (see profiled_figures)
    kernel_jobs: int  # profiled jobs whose kernel times count (kernel_ms is their median job's)
    profiler_slowdown: float | None  # profiled step over timed step, within a job (None: not timed)
    peak_mem_bytes: int | None
    peak_mem_warmup_bytes: int | None
    peak_mem_kind: str | None
    nondeterministic_ops: list[str]
    nondeterministic_kernels: list[str]
    determinism: str
    bitwise_identical_across_repeats: bool | None
    distinct_state_hashes: int
    throttled: bool | None
    attention_backends: list[str] | None = None  # union over the mode's jobs; None: not observed


@dataclass(frozen=True)
class PrecisionOutcome:
    """How the adaptive protocol ended. ``target`` and ``achieved`` are CI half-widths as
    fractions of the ratio; ``stopped_by`` is precision, max-time, max-repeats, fixed-repeats
    or failures."""

    target: float | None
    achieved: float | None
    reached: bool
    pairs: int
    stopped_by: str
    elapsed_s: float
    max_time_s: float | None
    # A projection, for a target not reached: the pairs at which the half-width would reach it if
    # the spread between pairs stayed as measured (it shrinks as 1/sqrt(pairs)), and the seconds
    # that many would take at the measured time per pair. None when reached or not projectable.
    pairs_needed: int | None = None
    seconds_needed: float | None = None


@dataclass
class OverheadResult:
    """The outcome of ``measure_overhead``; ``ratio`` is modes[1] over modes[0]."""

    config: OverheadConfig
    device_kind: str
    device_name: str
    jobs: list[JobOutcome]
    modes: list[ModeSummary]
    ratio: RatioEstimate | None
    kernel_ratio: RatioEstimate | None  # kernel time per step, paired over the profiled pairs
    memory_ratio: float | None
    precision: PrecisionOutcome
    kernel_tables: dict[str, pd.DataFrame]
    created_at: str
    command: str
    trace_dir: str | None
    kernel_times_note: str | None = None  # why the kernel times do not stand for the timed steps; None if they do
    partial: bool = False  # the measurement did not finish (Ctrl-C, SIGTERM, a kill): these are its finished pairs


def failure_of(exitcode: int, log_tail: str) -> tuple[str, str]:
    """(status, error) of a job that ended without a result: ``killed`` (by a signal, named) or
    ``crashed``, by its exit status alone; the end of its output is quoted, never read for a cause
    (a job that runs out of memory and says so writes ``oom`` in its result itself)."""
    tail = log_tail.strip()
    status = "killed" if exitcode < 0 else "crashed"
    return status, f"worker {how_it_ended(exitcode)}" + (f"; its last output: {last_line(tail)}" if tail else "")
