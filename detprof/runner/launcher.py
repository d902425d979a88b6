"""Runs an overhead measurement: one fresh process per job, interleaved, failures recorded not fatal.

``measure_overhead`` returns an ``OverheadResult`` (plain dataclasses and DataFrames); storing and
printing are the caller's business.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

import pandas as pd

from detprof.backend import backend_for
from detprof.documents import JobResult
from detprof.process.child import ChildResult, Ending
from detprof.process.processes import restart_fork_server
from detprof.runner.config import JobSpec, OverheadConfig, plan_pair
from detprof.runner.coverage import kernel_times_note, profiled_figures
from detprof.runner.kernel_times import KernelReader, kernel_ratio_of, mode_kernels
from detprof.runner.outcomes import JobOutcome, ModeSummary, OverheadResult, PrecisionOutcome, failure_of
from detprof.runner.protocol import (
    changed_switches,
    observed_determinism,
    projected_pairs,
    ratio_of,
    stop_reason,
)
from detprof.stats import summarize


def _start_job(spec: JobSpec, scratch: str, timeout_s: float) -> ChildResult:
    """The job in a process of its backend's kind (a PyTorch job forked from the fork server, a
    TensorFlow one in a new interpreter: the two frameworks never share a process)."""
    return backend_for(spec.framework).start_job(spec.to_json_dict(), scratch, spec.gpu_uuid, timeout_s)


def _run_worker(spec: JobSpec, timeout_s: float) -> JobOutcome:
    """Run one job in a fresh process; whatever happens becomes a JobOutcome."""
    with tempfile.TemporaryDirectory(prefix="detprof-job-") as scratch:
        ended = _start_job(spec, scratch, timeout_s)
    if ended.ending is Ending.TIMEOUT:
        return JobOutcome(spec, "timeout", error=f"job exceeded {timeout_s:g} s and was killed")
    if ended.ending in (Ending.KILLED, Ending.CRASHED):
        status, error = failure_of(ended.exitcode or 0, ended.log_tail)
        return JobOutcome(spec, status, error=error)
    if ended.document is None or not isinstance(ended.document.get("status"), str):
        return JobOutcome(spec, "failed", error=f"the job's result could not be used: {ended.how}")
    data = cast(JobResult, ended.document)
    return JobOutcome(
        spec=spec, status=data["status"], step_ms=data.get("step_ms", []),
        profiled_step_ms=data.get("profiled_step_ms", []), error=data.get("error"),
        peak_mem_bytes=data.get("peak_mem_bytes"), peak_mem_warmup_bytes=data.get("peak_mem_warmup_bytes"),
        peak_mem_kind=data.get("peak_mem_kind"), nondeterministic_ops=data.get("nondeterministic_ops", []),
        applied_toggles=data.get("applied_toggles", {}), switches_changed=data.get("switches_changed", []),
        environment=data.get("environment", {}),
        gpu_monitor=data.get("gpu_monitor"), trace_path=data.get("trace_path"), wall_s=data.get("wall_s"),
        state_sha256=data.get("state_sha256"), attention_backends=data.get("attention_backends"),
    )


def _summarize_mode(mode: str, outcomes: list[JobOutcome], table: pd.DataFrame | None, kernel_ms: float | None,
                    kernel_jobs: list[tuple[JobOutcome, float]], table_reason: str | None) -> ModeSummary:
    ok = [o for o in outcomes if o.ok and o.step_ms]
    steps = [t for o in ok for t in o.step_ms]
    summary = summarize(steps) if steps else None
    toggles = outcomes[0].spec.toggles
    ops = sorted({op for o in outcomes for op in o.nondeterministic_ops})
    flagged = [] if table is None else sorted(table.loc[table["nondeterministic"] == True, "name"])  # noqa: E712
    requested, fully = backend_for(outcomes[0].spec.framework).determinism_requested(toggles)
    hashes = [o.state_sha256 for o in ok if o.state_sha256]
    memories = [o.peak_mem_bytes for o in ok if o.peak_mem_bytes is not None]
    warmups = [o.peak_mem_warmup_bytes for o in ok if o.peak_mem_warmup_bytes is not None]
    monitors = [o.gpu_monitor for o in ok if o.gpu_monitor]
    throttles = [m.get("throttled") for m in monitors if m.get("throttled") is not None]
    coverage, slowdown = profiled_figures(kernel_jobs, summary.median if summary else None)
    return ModeSummary(
        mode=mode, toggles=toggles, repeats_ok=len(ok), repeats_failed=len(outcomes) - len(ok),
        step_ms=summary.median if summary else None, step_ms_iqr=summary.iqr if summary else None,
        noisy=summary.noisy if summary else None, kernel_ms=kernel_ms,
        kernel_ms_reason=None if kernel_ms is not None else table_reason,
        kernel_coverage=coverage if kernel_ms is not None else None,
        kernel_jobs=len(kernel_jobs), profiler_slowdown=slowdown,
        peak_mem_bytes=max(memories) if memories else None,
        peak_mem_warmup_bytes=max(warmups) if warmups else None,
        peak_mem_kind=ok[0].peak_mem_kind if ok else None,
        nondeterministic_ops=ops, nondeterministic_kernels=flagged,
        determinism=observed_determinism(requested, fully, hashes, ops, flagged, changed_switches(ok)),
        bitwise_identical_across_repeats=(len(set(hashes)) == 1) if len(hashes) >= 2 else None,
        distinct_state_hashes=len(set(hashes)),
        throttled=any(throttles) if throttles else None,
        attention_backends=(sorted({b for o in ok for b in o.attention_backends or []})
                            if any(o.attention_backends is not None for o in ok) else None),
    )


# Pairs per fork server. Every child of one server shares part of its memory layout, and on a CPU
# that can shift a mode's step time for as long as the server lives: with one server per run, runs
# of the same comparison gave tight CIs that disagreed (benchmarks/results/layout_effect_cpu_2core.txt).
# A new server every few pairs lets the pairs sample that state, so the CI covers it.
FORK_SERVER_PAIRS = 5


def measure_overhead(config: OverheadConfig, device_kind: str, device_name: str, trace_dir: str | None,
                     command: str = "", on_job_done: Callable[[JobOutcome], None] | None = None,
                     on_pair_done: Callable[[OverheadResult], None] | None = None) -> OverheadResult:
    """Run pairs of jobs (one per mode, balanced order) until the protocol says stop, and summarise.

    ``protocol.repeats`` pairs always run; in the adaptive protocol (``protocol.precision`` set)
    more follow until the ratio's CI half-width is at most the target, the time budget
    ``protocol.max_time_s`` would be overrun by another pair, or ``protocol.max_repeats`` pairs
    ran. ``trace_dir`` receives the profiled passes' Chrome traces (gzipped JSON);
    ``on_job_done`` is called after each job, for progress display, and ``on_pair_done`` after
    each pair but the last with the run so far (``partial`` True, stopped by ``interrupted``),
    so that a caller can keep it should the measurement never finish.
    """
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    protocol = config.protocol
    outcomes: list[JobOutcome] = []
    pair_seconds: list[float] = []
    started = time.perf_counter()
    read = KernelReader(device_kind == "cuda")
    pair = 0
    while True:
        pair_started = time.perf_counter()
        for spec in plan_pair(config, pair, len(outcomes), trace_dir):
            outcome = _run_worker(spec, config.job_timeout_s)
            outcomes.append(outcome)
            if on_job_done:
                on_job_done(outcome)
        pair += 1
        if pair % FORK_SERVER_PAIRS == 0:
            restart_fork_server()
        pair_seconds.append(time.perf_counter() - pair_started)
        ratio = ratio_of(outcomes)
        failures = sum(not o.ok for o in outcomes)
        stop = stop_reason(protocol, pair, ratio, time.perf_counter() - started, pair_seconds, failures)
        if stop:
            break
        if on_pair_done:
            on_pair_done(summarize_outcomes(config, device_kind, device_name, outcomes, read, "interrupted",
                                            time.perf_counter() - started, created_at, command, trace_dir))
    return summarize_outcomes(config, device_kind, device_name, outcomes, read, stop, time.perf_counter() - started,
                              created_at, command, trace_dir)


def summarize_outcomes(config: OverheadConfig, device_kind: str, device_name: str, outcomes: list[JobOutcome],
                       read: KernelReader, stopped_by: str, elapsed_s: float, created_at: str, command: str,
                       trace_dir: str | None) -> OverheadResult:
    """The result of the jobs run so far. ``stopped_by`` is the protocol's reason to stop, or
    ``interrupted`` for a measurement that did not finish (the result is then ``partial``)."""
    protocol = config.protocol
    ratio = ratio_of(outcomes)
    achieved = ratio.half_width if ratio else None
    target = protocol.precision if protocol.adaptive else None
    pairs = ratio.pairs if ratio else 0
    needed = projected_pairs(pairs, achieved, target)
    precision = PrecisionOutcome(
        target=target, achieved=achieved,
        reached=bool(protocol.adaptive and achieved is not None and achieved <= (protocol.precision or 0.0)),
        pairs=pairs, stopped_by=stopped_by, elapsed_s=elapsed_s,
        max_time_s=protocol.max_time_s if protocol.adaptive else None, pairs_needed=needed,
        seconds_needed=None if needed is None else elapsed_s / pairs * needed)

    # The A/A test uses one mode twice: tell its two sides apart by position, not name.
    sides: list[list[JobOutcome]] = [[o for o in outcomes if o.spec.side == side] for side in (0, 1)]
    tables: dict[str, pd.DataFrame] = {}
    summaries = []
    for position, mode in enumerate(config.modes):
        table, kernel_ms, kernel_jobs, reason = mode_kernels(sides[position], read, protocol.profile_steps)
        label = mode if config.modes[0] != config.modes[1] else f"{mode}#{position + 1}"
        if table is not None:
            tables[label] = table
        summary = _summarize_mode(mode, sides[position], table, kernel_ms, kernel_jobs, reason)
        summary.mode = label
        summaries.append(summary)

    memory_ratio = None
    if summaries[0].peak_mem_bytes and summaries[1].peak_mem_bytes is not None:
        memory_ratio = summaries[1].peak_mem_bytes / summaries[0].peak_mem_bytes
    return OverheadResult(config=config, device_kind=device_kind, device_name=device_name, jobs=list(outcomes),
                          modes=summaries, ratio=ratio,
                          kernel_ratio=kernel_ratio_of(outcomes, read, protocol.profile_steps),
                          memory_ratio=memory_ratio, precision=precision, kernel_tables=tables,
                          created_at=created_at, command=command, trace_dir=trace_dir,
                          kernel_times_note=kernel_times_note(summaries), partial=stopped_by == "interrupted")
