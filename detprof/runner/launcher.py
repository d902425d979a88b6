"""Runs an overhead measurement: one fresh process per job, interleaved, failures recorded not fatal.

``measure_overhead`` returns an ``OverheadResult`` (plain dataclasses and DataFrames); storing and
printing are the caller's business.
"""

from __future__ import annotations

import json
import math
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from detprof.backend import backend_for
from detprof.documents import JobResult
from detprof.kernels import KernelLessGpuTraceError, TraceError, kernel_table, load_trace
from detprof.process.processes import ProcessOutcome, restart_fork_server
from detprof.process.results import last_line
from detprof.runner.config import JobSpec, OverheadConfig, Protocol, plan_pair
from detprof.runner.coverage import kernel_times_note, profiled_figures
from detprof.stats import RatioEstimate, paired_ratio, summarize


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


def projected_pairs(pairs: int, achieved: float | None, target: float | None) -> int | None:
    """Pairs at which a CI half-width of ``achieved`` from ``pairs`` pairs would shrink to ``target``
    at the same spread (half-width ~ 1/sqrt(pairs)); None when there is nothing to project."""
    if not pairs or achieved is None or not target or achieved <= target:
        return None
    return math.ceil(pairs * (achieved / target) ** 2)


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


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def failure_of(exitcode: int, log_tail: str) -> tuple[str, str]:
    """(status, error) of a job that ended without a result: ``killed`` (by a signal, named),
    ``oom`` only with evidence (CUDA's or the allocator's message in its log), else ``crashed``."""
    tail = log_tail.strip()
    status = "oom" if "out of memory" in tail.lower() else "killed" if exitcode < 0 else "crashed"
    how = f"killed by signal {-exitcode} ({_signal_name(-exitcode)})" if exitcode < 0 else f"exit code {exitcode}"
    return status, f"worker {how}" + (f"; its last output: {last_line(tail)}" if tail else "")


def _start_job(spec: JobSpec, scratch: str, result_file: Path, timeout_s: float) -> ProcessOutcome:
    """The job in a process of its backend's kind (a PyTorch job forked from the fork server, a
    TensorFlow one in a new interpreter: the two frameworks never share a process)."""
    return backend_for(spec.framework).start_job(spec.to_json_dict(), result_file, scratch, spec.gpu_uuid, timeout_s)


def _run_worker(spec: JobSpec, timeout_s: float) -> JobOutcome:
    """Run one job in a fresh process; whatever happens becomes a JobOutcome."""
    with tempfile.TemporaryDirectory(prefix="detprof-job-") as scratch:
        result_file = Path(scratch, "result.json")
        outcome = _start_job(spec, scratch, result_file, timeout_s)
        if outcome.timed_out:
            return JobOutcome(spec, "timeout", error=f"job exceeded {timeout_s:g} s and was killed")
        if not result_file.exists():
            status, error = failure_of(outcome.exitcode or 0, outcome.log_tail)
            return JobOutcome(spec, status, error=error)
        try:
            data: JobResult = json.loads(result_file.read_text())
        except (OSError, ValueError) as error:  # cut short: the job's disk was full, or it was killed writing
            return JobOutcome(spec, "failed", error=f"the job's result file could not be read ({error}); "
                                                    "is the disk full?")
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            return JobOutcome(spec, "failed", error="the job's result file holds no result document")
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


def _mode_kernels(outcomes: list[JobOutcome], read: KernelReader, profile_steps: int
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


def changed_switches(outcomes: list[JobOutcome]) -> list[str]:
    """The switches some job found changed after its last step from what the mode had set (the
    workload's own code changed them), as ``name set -> found``, each once."""
    return list(dict.fromkeys(change for outcome in outcomes for change in outcome.switches_changed))


def observed_determinism(requested: bool, fully_requested: bool, hashes: list[str], warned_ops: list[str],
                         flagged_kernels: list[str], changed: list[str] | None = None) -> str:
    """What the repeats showed, not what was asked for.

    ``not as set`` when the workload's code changed a switch the mode set (``changed``); ``off``
    when determinism was not requested; otherwise ``differs across repeats`` when the repeats'
    parameter fingerprints differ, ``unverified (one repeat)`` with fewer than two fingerprints,
    ``not fully deterministic`` when they agree but an op warned that it has no deterministic
    implementation, the catalog flagged an atomics kernel, or not every toggle was on, and ``on``
    when at least two repeats trained bit-identically with none of those signs.
    """
    if changed:
        return "not as set: the workload changed " + ", ".join(changed)
    if not requested:
        return "off"
    if len(set(hashes)) > 1:
        return "differs across repeats"
    if len(hashes) < 2:
        return "unverified (one repeat)"
    if warned_ops or flagged_kernels or not fully_requested:
        return "not fully deterministic"
    return "on"


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


def pairs_of(outcomes: list[JobOutcome]) -> list[tuple[list[float], list[float]]]:
    """(baseline steps, treatment steps) of every pair whose two jobs both succeeded, in pair order."""
    by_pair: dict[int, dict[int, JobOutcome]] = {}
    for outcome in outcomes:
        by_pair.setdefault(outcome.spec.repeat, {})[outcome.spec.side] = outcome
    pairs = []
    for pair in sorted(by_pair):
        jobs = by_pair[pair]
        if all(side in jobs and jobs[side].ok and jobs[side].step_ms for side in (0, 1)):
            pairs.append((jobs[0].step_ms, jobs[1].step_ms))
    return pairs


def _ratio(outcomes: list[JobOutcome]) -> RatioEstimate | None:
    pairs = pairs_of(outcomes)
    return paired_ratio(pairs) if pairs else None


# The precision target is checked from this many pairs on. With 3 or 4 pairs the spread of the log
# ratios is itself so uncertain that stopping as soon as the CI looks narrow stops on the pairs
# that happened to agree: in the A/A benchmark a resnet18 trial stopped at 3 pairs with a CI
# (0.965-0.995) that missed 1.0; replaying the recorded A/A jobs, the minimum of 5 raised coverage
# from 88% to 92% on the noisier small CNN (benchmarks/aa_test.py, docs/benchmarks.md).
MIN_PAIRS_FOR_PRECISION = 5


def _stop_reason(protocol: Protocol, pairs_run: int, ratio: RatioEstimate | None, elapsed_s: float,
                 pair_seconds: list[float], failures: int) -> str | None:
    """Why to stop adding pairs now, or None to run another.

    The time budget is kept: from MIN_PAIRS_FOR_CI pairs on (the fewest that give a CI at all), no
    pair starts that would overrun it, even before ``protocol.repeats`` pairs ran; on a machine too
    slow for the minimum, the run stops with a wide CI and says so rather than overrunning."""
    if not protocol.adaptive:
        return None if pairs_run < protocol.repeats else "fixed-repeats"
    if pairs_run < protocol.budget_floor:
        return None
    half_width = ratio.half_width if ratio else None
    if (pairs_run >= protocol.repeats and half_width is not None and half_width <= (protocol.precision or 0.0)
            and pairs_run >= MIN_PAIRS_FOR_PRECISION):
        return "precision"
    # Failures do not average out: a job that failed three times, or a mode with no successful
    # job yet, will not reach the target by repetition.
    if failures >= 3 or ratio is None:
        return "failures"
    if pairs_run >= protocol.max_repeats:
        return "max-repeats"
    if protocol.max_time_s is not None and elapsed_s + max(pair_seconds[-3:]) > protocol.max_time_s:
        return "max-time"
    return None


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
        ratio = _ratio(outcomes)
        failures = sum(not o.ok for o in outcomes)
        stop = _stop_reason(protocol, pair, ratio, time.perf_counter() - started, pair_seconds, failures)
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
    ratio = _ratio(outcomes)
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
        table, kernel_ms, kernel_jobs, reason = _mode_kernels(sides[position], read, protocol.profile_steps)
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
