"""Runs an overhead measurement: one fresh process per job, interleaved, failures recorded not fatal.

``measure_overhead`` returns an ``OverheadResult`` (plain dataclasses and DataFrames); storing and
printing are the caller's business.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from detprof.kernels import TraceError, kernel_table, load_trace
from detprof.modes import Toggles, environment_for
from detprof.runner.config import JobSpec, OverheadConfig, plan_jobs
from detprof.runner.processes import run_in_fresh_process
from detprof.stats import RatioEstimate, ratio_of_medians, summarize


@dataclass
class JobOutcome:
    """What one worker process produced. Times in ms, memory in bytes."""

    spec: JobSpec
    status: str  # ok | failed | oom | crashed | timeout
    step_ms: list[float] = field(default_factory=list)
    error: str | None = None
    peak_mem_bytes: int | None = None
    peak_mem_kind: str | None = None
    nondeterministic_ops: list[str] = field(default_factory=list)
    applied_toggles: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    gpu_monitor: dict[str, Any] | None = None
    trace_path: str | None = None
    wall_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class ModeSummary:
    """One mode's figures over its successful repeats. Step and kernel times in ms per step."""

    mode: str
    toggles: dict[str, Any]
    repeats_ok: int
    repeats_failed: int
    step_ms: float | None
    step_ms_iqr: float | None
    noisy: bool | None
    kernel_ms: float | None
    kernel_coverage: float | None
    peak_mem_bytes: int | None
    peak_mem_kind: str | None
    nondeterministic_ops: list[str]
    nondeterministic_kernels: list[str]
    determinism: str  # "off" | "on" (nothing nondeterministic seen) | "not fully deterministic"
    throttled: bool | None


@dataclass
class OverheadResult:
    """The outcome of ``measure_overhead``; ``ratio`` is modes[1] over modes[0]."""

    config: OverheadConfig
    device_kind: str
    device_name: str
    jobs: list[JobOutcome]
    modes: list[ModeSummary]
    ratio: RatioEstimate | None
    kernel_ratio: float | None
    kernel_tables: dict[str, pd.DataFrame]
    created_at: str
    command: str
    trace_dir: str | None


def _run_worker(spec: JobSpec, timeout_s: float) -> JobOutcome:
    """Run one job in a fresh process; whatever happens becomes a JobOutcome."""
    env = environment_for(Toggles(**spec.toggles), dict(os.environ))
    with tempfile.TemporaryDirectory(prefix="detprof-job-") as scratch:
        result_file = Path(scratch, "result.json")
        outcome = run_in_fresh_process("detprof.runner.worker:run_to_file", (spec.to_json_dict(), str(result_file)),
                                       env, Path(scratch, "job.log"), timeout_s)
        if outcome.timed_out:
            return JobOutcome(spec, "timeout", error=f"job exceeded {timeout_s:g} s and was killed")
        if not result_file.exists():
            code = outcome.exitcode or 0
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            status = "oom" if "out of memory" in outcome.log_tail.lower() or code == -9 else "crashed"
            return JobOutcome(spec, status, error=f"worker {how}: {outcome.log_tail}".strip())
        data = json.loads(result_file.read_text())
    return JobOutcome(
        spec=spec, status=data["status"], step_ms=data.get("step_ms", []), error=data.get("error"),
        peak_mem_bytes=data.get("peak_mem_bytes"), peak_mem_kind=data.get("peak_mem_kind"),
        nondeterministic_ops=data.get("nondeterministic_ops", []), applied_toggles=data.get("applied_toggles", {}),
        environment=data.get("environment", {}), gpu_monitor=data.get("gpu_monitor"),
        trace_path=data.get("trace_path"), wall_s=data.get("wall_s"),
    )


def _kernel_table_for(outcomes: list[JobOutcome]) -> pd.DataFrame | None:
    for outcome in outcomes:
        if outcome.ok and outcome.trace_path and Path(outcome.trace_path).exists():
            try:
                return kernel_table(load_trace(outcome.trace_path).events)
            except TraceError:
                return None
    return None


def _summarize_mode(mode: str, outcomes: list[JobOutcome], table: pd.DataFrame | None,
                    profile_steps: int) -> ModeSummary:
    ok = [o for o in outcomes if o.ok and o.step_ms]
    steps = [t for o in ok for t in o.step_ms]
    summary = summarize(steps) if steps else None
    kernel_ms = None
    if table is not None and profile_steps > 0:
        kernel_ms = float(table["total_us"].sum()) / profile_steps / 1000.0
    toggles = outcomes[0].spec.toggles
    ops = sorted({op for o in outcomes for op in o.nondeterministic_ops})
    flagged = [] if table is None else sorted(table.loc[table["nondeterministic"] == True, "name"])  # noqa: E712
    requested = bool(toggles.get("deterministic_algorithms") or toggles.get("cudnn_deterministic"))
    determinism = "off" if not requested else (
        "not fully deterministic" if ops or flagged or not Toggles(**toggles).fully_deterministic_request
        else "on")
    memories = [o.peak_mem_bytes for o in ok if o.peak_mem_bytes is not None]
    monitors = [o.gpu_monitor for o in ok if o.gpu_monitor]
    return ModeSummary(
        mode=mode, toggles=toggles, repeats_ok=len(ok), repeats_failed=len(outcomes) - len(ok),
        step_ms=summary.median if summary else None, step_ms_iqr=summary.iqr if summary else None,
        noisy=summary.noisy if summary else None, kernel_ms=kernel_ms,
        kernel_coverage=(kernel_ms / summary.median) if kernel_ms is not None and summary else None,
        peak_mem_bytes=max(memories) if memories else None,
        peak_mem_kind=ok[0].peak_mem_kind if ok else None,
        nondeterministic_ops=ops, nondeterministic_kernels=flagged, determinism=determinism,
        throttled=any(m.get("throttled") for m in monitors) if monitors else None,
    )


def measure_overhead(config: OverheadConfig, device_kind: str, device_name: str, trace_dir: str | None,
                     command: str = "", on_job_done: Callable[[JobOutcome], None] | None = None) -> OverheadResult:
    """Run every job of ``config`` (modes interleaved across repeats) and summarise.

    ``trace_dir`` receives the profiled passes' Chrome traces (gzipped JSON). ``on_job_done`` is
    called after each job, for progress display.
    """
    created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    outcomes = []
    for spec in plan_jobs(config, trace_dir):
        outcome = _run_worker(spec, config.job_timeout_s)
        outcomes.append(outcome)
        if on_job_done:
            on_job_done(outcome)

    # The A/A test uses one mode twice: tell its two sides apart by position, not name.
    sides: list[list[JobOutcome]] = [[o for o in outcomes if o.spec.side == side] for side in (0, 1)]
    tables: dict[str, pd.DataFrame] = {}
    summaries = []
    for position, mode in enumerate(config.modes):
        table = _kernel_table_for(sides[position])
        label = mode if config.modes[0] != config.modes[1] else f"{mode}#{position + 1}"
        if table is not None:
            tables[label] = table
        summary = _summarize_mode(mode, sides[position], table, config.protocol.profile_steps)
        summary.mode = label
        summaries.append(summary)

    ratio = None
    base = [o.step_ms for o in sides[0] if o.ok and o.step_ms]
    treat = [o.step_ms for o in sides[1] if o.ok and o.step_ms]
    if base and treat:
        ratio = ratio_of_medians(base, treat, seed=config.seed)
    kernel_ratio = None
    if summaries[0].kernel_ms and summaries[1].kernel_ms is not None:
        kernel_ratio = summaries[1].kernel_ms / summaries[0].kernel_ms
    return OverheadResult(config=config, device_kind=device_kind, device_name=device_name, jobs=outcomes,
                          modes=summaries, ratio=ratio, kernel_ratio=kernel_ratio, kernel_tables=tables,
                          created_at=created_at, command=command, trace_dir=trace_dir)
