"""The ``overhead`` capability as a Python API: configure, measure, store, and the JSON document.

    from detprof.overhead import run_overhead
    doc = run_overhead("vgg19", gpu="v100")      # dict, as `detprof overhead --json` prints
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from detprof.errors import require
from detprof.gpus import DeviceChoice, select_device
from detprof.modes import parse_modes
from detprof.runner.config import MAX_PAIRS, OverheadConfig, build_workload, default_protocol
from detprof.runner.host import process_alive
from detprof.runner.launcher import JobOutcome, OverheadResult, measure_overhead
from detprof.stats import verdict
from detprof.store import ResultStore, StoreLike, open_store
from detprof.store.db import StoreFullError, StoreLockedError
from detprof.zoo import arch_spec

DEFAULT_ARCH = "resnet18"


MAX_SEED = 2**32 - 1  # what every generator detprof seeds accepts
# Limits that no real measurement reaches, so that a typo (--steps 100000000000) is refused instead
# of starting a run that never ends. The paper timed 100 steps per process.
MAX_STEPS = 100_000  # warm-up or timed steps per process
MAX_PROFILE_STEPS = 1_000
MAX_TIME_S = 7 * 24 * 3600.0  # a week: --max-time and --job-timeout


def build_config(arch: str | None, device: DeviceChoice, modes: str = "default,deterministic",
                 kernel_size: int | None = None, batch_norm: bool | None = None, batch_size: int | None = None,
                 image_size: int | None = None,
                 warmup_steps: int | None = None, timed_steps: int | None = None, profile_steps: int | None = None,
                 repeats: int | None = None, threads: int | None = None, seed: int = 0,
                 job_timeout_s: float = 1800.0, precision: float | None = None,
                 max_time_s: float | None = None, model: str | None = None,
                 input_shape: tuple[int, int, int] | None = None, num_classes: int | None = None,
                 framework: str = "pytorch") -> OverheadConfig:
    """Validate the user's choices and fill device-dependent defaults; raises ArgumentError
    (or UnknownArchError / UnknownModeError) naming the bad value and what is accepted.

    ``repeats`` is the number of pairs of processes (one per mode) that always run. The protocol
    is adaptive by default: more pairs follow until the ratio's 95% CI is within ±``precision``
    (a fraction) or ``max_time_s`` seconds are spent. Giving ``repeats`` without ``precision``
    runs exactly that many pairs; ``precision=0`` does the same with the default repeats.
    ``model`` (MODULE:FUNCTION) measures a user's model instead of ``arch`` (see build_workload).
    ``framework`` is ``pytorch`` or ``tensorflow`` (also ``tf``): Keras models in TensorFlow's
    default and op-deterministic modes, each job a new interpreter without torch.
    """
    from detprof.tf import canonical_framework, require_tf_modes

    framework = canonical_framework(framework)
    mode_pair = parse_modes(modes)
    if framework == "tensorflow":
        require_tf_modes(mode_pair)
    require(0 <= seed <= MAX_SEED, f"--seed {seed} is not accepted; use an integer from 0 to {MAX_SEED:,}")
    cpus = os.cpu_count() or 1
    require(threads is None or threads <= cpus,
             f"--threads {threads} is not accepted; this machine has {cpus} CPUs: use 1 to {cpus}")
    require(warmup_steps is None or 0 <= warmup_steps <= MAX_STEPS,
             f"--warmup {warmup_steps} is not accepted; use 0 to {MAX_STEPS:,}")
    require(timed_steps is None or 1 <= timed_steps <= MAX_STEPS,
             f"--steps {timed_steps} is not accepted; use 1 to {MAX_STEPS:,}")
    require(profile_steps is None or 0 <= profile_steps <= MAX_PROFILE_STEPS,
             f"--profile-steps {profile_steps} is not accepted; use 0 to {MAX_PROFILE_STEPS:,} "
             "(0 skips kernel profiling)")
    require(repeats is None or 1 <= repeats <= MAX_PAIRS,
             f"--repeats {repeats} is not accepted; use 1 to {MAX_PAIRS} (pairs of processes)")
    require(threads is None or threads >= 1, f"--threads {threads} is not accepted; use >= 1")
    require(math.isfinite(job_timeout_s) and 0 < job_timeout_s <= MAX_TIME_S,
             f"--job-timeout {job_timeout_s} is not accepted; use seconds > 0, at most {MAX_TIME_S:,.0f} (a week)")
    require(precision is None or 0 <= precision < 1,
             f"--precision {precision} is not accepted; use a fraction such as 0.02 (±2%), or 0 for fixed repeats")
    require(max_time_s is None or (math.isfinite(max_time_s) and 0 < max_time_s <= MAX_TIME_S),
             f"--max-time {max_time_s} is not accepted; use seconds > 0, at most {MAX_TIME_S:,.0f} (a week)")
    on_gpu = device.kind == "cuda"
    workload = build_workload(device, arch, model, batch_size, image_size, kernel_size, batch_norm, input_shape,
                              num_classes, framework)
    overrides: dict[str, Any] = {"warmup_steps": warmup_steps, "timed_steps": timed_steps,
                                 "profile_steps": profile_steps, "repeats": repeats, "max_time_s": max_time_s}
    if threads is not None:
        overrides["cpu_threads"] = threads
    if precision is not None:
        overrides["precision"] = precision or None
    elif repeats is not None:
        overrides["precision"] = None  # an explicit --repeats alone means exactly that many pairs
    protocol = replace(default_protocol(on_gpu), **{k: v for k, v in overrides.items()
                                                    if v is not None or k == "precision"})
    if not protocol.adaptive:
        protocol = replace(protocol, max_time_s=None)
    return OverheadConfig(workload=workload, protocol=protocol, modes=(mode_pair[0], mode_pair[1]),
                          device=device.torch_device, gpu_index=device.gpu.index if device.gpu else None,
                          seed=seed, job_timeout_s=job_timeout_s, gpu_uuid=device.gpu.uuid if device.gpu else None,
                          framework=framework)


def summary_document(result: OverheadResult, run_id: int | None = None) -> dict[str, Any]:
    """The JSON document of a measurement (what ``overhead --json`` prints). Times in ms, memory in bytes."""
    config = result.config
    ratio, kernel = result.ratio, result.kernel_ratio
    env = next((j.environment for j in result.jobs if j.environment), {})
    labels = [m.mode for m in result.modes]
    return {
        "run_id": run_id,
        "created_at": result.created_at,
        "partial": result.partial,
        "arch": config.workload.arch,
        "framework": config.framework,
        "device": {"kind": result.device_kind, "name": result.device_name, "gpu_index": config.gpu_index,
                   "gpu_uuid": config.gpu_uuid},
        "workload": asdict(config.workload),
        "protocol": asdict(config.protocol),
        "verdict": verdict(ratio, labels[0], labels[1]),
        "modes": [
            {"mode": m.mode, "step_ms": m.step_ms, "step_ms_iqr": m.step_ms_iqr, "noisy": m.noisy,
             "kernel_ms": m.kernel_ms, "kernel_ms_reason": m.kernel_ms_reason, "kernel_coverage": m.kernel_coverage,
             "kernel_jobs": m.kernel_jobs,
             "peak_mem_bytes": m.peak_mem_bytes, "peak_mem_warmup_bytes": m.peak_mem_warmup_bytes,
             "peak_mem_kind": m.peak_mem_kind, "repeats_ok": m.repeats_ok, "repeats_failed": m.repeats_failed,
             "determinism": m.determinism, "bitwise_identical_across_repeats": m.bitwise_identical_across_repeats,
             "distinct_state_hashes": m.distinct_state_hashes, "nondeterministic_ops": m.nondeterministic_ops,
             "nondeterministic_kernels": m.nondeterministic_kernels, "throttled": m.throttled, "toggles": m.toggles}
            for m in result.modes
        ],
        "ratio": ratio.ratio if ratio else None,
        "ratio_ci": [ratio.low, ratio.high] if ratio and ratio.has_ci else None,
        "ratio_ci_reason": None if ratio and ratio.has_ci else (ratio.reason if ratio else "no complete pair of jobs"),
        "ratio_ci_method": ratio.method if ratio else None,
        "ratio_pairs": ratio.pairs if ratio else 0,
        "precision": asdict(result.precision),
        "kernel_ratio": kernel.ratio if kernel else None,
        "kernel_ratio_ci": [kernel.low, kernel.high] if kernel and kernel.has_ci else None,
        "kernel_ratio_ci_reason": None if kernel and kernel.has_ci else (
            kernel.reason if kernel else "no pair with both jobs profiled"),
        "kernel_ratio_pairs": kernel.pairs if kernel else 0,
        "kernel_times_reliable": None if not kernel else result.kernel_times_note is None,
        "kernel_times_note": result.kernel_times_note,
        "memory_ratio": result.memory_ratio,
        "noisy": any(bool(m.noisy) for m in result.modes),
        "expected_nondeterministic_ops": ([] if config.workload.model_ref or config.framework != "pytorch" else
                                          list(arch_spec(config.workload.arch).known_nondeterministic_ops)),
        "failed_jobs": [{"mode": j.spec.mode, "repeat": j.spec.repeat, "status": j.status, "error": j.error}
                        for j in result.jobs if not j.ok],
        "environment": env,
        "command": result.command,
        "trace_dir": result.trace_dir,
    }


def _job_record(job: JobOutcome) -> dict[str, Any]:
    return {"index": job.spec.index, "side": job.spec.side, "mode": job.spec.mode, "repeat": job.spec.repeat,
            "status": job.status, "error": job.error, "peak_mem_bytes": job.peak_mem_bytes,
            "peak_mem_warmup_bytes": job.peak_mem_warmup_bytes, "peak_mem_kind": job.peak_mem_kind,
            "toggles": job.spec.toggles, "applied_toggles": job.applied_toggles,
            "nondeterministic_ops": job.nondeterministic_ops, "gpu_monitor": job.gpu_monitor,
            "trace_path": job.trace_path, "wall_s": job.wall_s, "step_ms": job.step_ms,
            "state_sha256": job.state_sha256}


def run_records(result: OverheadResult, extra_config: dict[str, Any] | None = None
                ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """What the store keeps of a measurement: (run, jobs, kernel tables), as ResultStore.save_run
    takes them. ``extra_config`` is added to the run's stored configuration (a sweep's job key)."""
    document = summary_document(result)
    run = {"created_at": result.created_at, "kind": "overhead", "arch": document["arch"],
           "framework": document["framework"], "device_kind": result.device_kind, "device_name": result.device_name,
           "modes": list(result.config.modes), "command": result.command,
           "config": {**result.config.as_dict(), **(extra_config or {})},
           "environment": document["environment"], "summary": document}
    return run, [_job_record(j) for j in result.jobs], result.kernel_tables


def store_result(store: ResultStore, result: OverheadResult) -> int:
    """Save a measurement in one transaction; returns the new run id."""
    run_id = store.save_run(*run_records(result))
    assert run_id is not None  # only a sweep job's run can be refused as a duplicate
    return run_id


API_COMMAND = "Python API: detprof.overhead.run_overhead"
TRACE_OWNER = ".measuring"  # in a trace folder whose run is not stored yet: the measuring process's pid


def remove_abandoned_traces(traces: Path) -> list[Path]:
    """Delete trace folders of measurements that never got stored (their process was killed);
    returns what was removed. A folder still being measured into, or already stored, stays."""
    removed = []
    for owner in traces.glob(f"*/{TRACE_OWNER}"):
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue
        if not process_alive(pid):
            shutil.rmtree(owner.parent, ignore_errors=True)
            removed.append(owner.parent)
    return removed


@contextmanager
def trace_folder(store: ResultStore) -> Iterator[Path]:
    """A new folder for one measurement's traces, beside the database. It is removed if the block
    raises before ``release_trace_folder`` marked it as kept (a stored run, partial or whole,
    refers to it); otherwise it stays. One abandoned by a killed process before any of its run was
    stored is removed by the next measurement into the same store."""
    traces = store.path.parent / "traces"
    remove_abandoned_traces(traces)
    trace_dir = traces / uuid.uuid4().hex[:12]
    trace_dir.mkdir(parents=True)
    (trace_dir / TRACE_OWNER).write_text(str(os.getpid()))
    try:
        yield trace_dir
    except BaseException:
        if (trace_dir / TRACE_OWNER).exists():  # not released: no stored run refers to it
            shutil.rmtree(trace_dir, ignore_errors=True)
        raise


def release_trace_folder(trace_dir: Path) -> None:
    """Mark a trace folder as belonging to a stored (or pending) run: it is never cleaned up."""
    (trace_dir / TRACE_OWNER).unlink(missing_ok=True)


class MeasurementInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a measurement after some of its pairs had finished: they are stored
    as run ``run_id``, marked partial, with the ratio over those ``pairs``."""

    def __init__(self, run_id: int, pairs: int, document: dict[str, Any] | None = None) -> None:
        super().__init__(f"interrupted; {pairs} finished pairs stored as run {run_id} (partial)")
        self.run_id = run_id
        self.pairs = pairs
        self.document = document  # the stored partial run's summary document


class PartialRunKeeper:
    """Keeps a measurement in progress in the store, pair by pair: the first finished pair creates
    its run (marked partial), each later one replaces it, and the finished measurement replaces it
    for the last time. So a run stopped by Ctrl-C, SIGTERM, a kill or a timeout keeps every pair
    it finished, and its traces with it."""

    def __init__(self, store: ResultStore, trace_dir: Path) -> None:
        self.store = store
        self.trace_dir = trace_dir
        self.run_id: int | None = None
        self.last: OverheadResult | None = None  # the run as last stored

    def keep(self, result: OverheadResult) -> None:
        """Store the run so far; a database locked by another writer is skipped this time (the
        finished run is stored, or kept as a pending file, as any run is)."""
        records = run_records(result)
        try:
            if self.run_id is None:
                self.run_id = self.store.save_run(*records, keep_if_locked=False)
                release_trace_folder(self.trace_dir)  # a stored run refers to these traces now
            else:
                self.store.replace_run(self.run_id, *records, keep_if_locked=False)
        except (StoreLockedError, StoreFullError):
            return  # this pair stays unstored; the finished run (or its pending file) has it
        self.last = result

    def finish(self, result: OverheadResult) -> int:
        """Store the finished measurement (replacing the partial run, if any); returns its run id."""
        if self.run_id is None:
            return store_result(self.store, result)
        self.store.replace_run(self.run_id, *run_records(result))
        return self.run_id


def measure_and_store(config: OverheadConfig, device: DeviceChoice, db: StoreLike = None,
                      on_job_done: Callable[[JobOutcome], None] | None = None,
                      command: str | None = None) -> dict[str, Any]:
    """Run a validated config, store it (traces beside the database) and return its summary document.

    ``command`` is what the stored run records as its origin (the command line passes its own;
    from Python it is API_COMMAND). The run is stored as soon as its first pair has finished and
    updated after each pair, so that Ctrl-C (or SIGTERM, which the command line turns into the
    same) keeps the finished pairs as a partial run and raises MeasurementInterrupted naming it.
    A measurement stopped before its first pair finished leaves nothing behind; one killed
    outright is cleaned up by the next measurement into the same store. When the database stays
    locked, the measurement is kept as a pending file (StoreLockedError says where).
    """
    with open_store(db, create=True) as store:
        store.store_pending()
        with trace_folder(store) as trace_dir:
            keeper = PartialRunKeeper(store, trace_dir)
            try:
                result = measure_overhead(config, device.kind, device.name, str(trace_dir),
                                          command=command or API_COMMAND, on_job_done=on_job_done,
                                          on_pair_done=keeper.keep)
            except KeyboardInterrupt as stop:
                if keeper.run_id is None or keeper.last is None or isinstance(stop, MeasurementInterrupted):
                    raise
                document = summary_document(keeper.last, keeper.run_id)
                raise MeasurementInterrupted(keeper.run_id, document["ratio_pairs"], document) from stop
        try:
            run_id = keeper.finish(result)
        except (StoreLockedError, StoreFullError) as unstored:
            # Traces stay when something refers to them: a pending file, or the partial run stored
            # before; otherwise nothing ever will, and they go now rather than filling the disk.
            if unstored.kept is not None or keeper.run_id is not None:
                release_trace_folder(trace_dir)
            else:
                shutil.rmtree(trace_dir, ignore_errors=True)
            raise
        release_trace_folder(trace_dir)
    return summary_document(result, run_id)


def run_overhead(arch: str | None = DEFAULT_ARCH, gpu: str | None = None, db: StoreLike = None,
                 on_job_done: Callable[[JobOutcome], None] | None = None, command: str | None = None,
                 **options: Any) -> dict[str, Any]:
    """Measure, store and return the summary document of one overhead comparison.

    ``options`` are build_config's keyword arguments (modes, kernel_size, batch_size, ...).
    """
    device = select_device(gpu)
    if options.get("model"):
        arch = None  # a user's model replaces the zoo arch (and its default)
    return measure_and_store(build_config(arch, device, **options), device, db, on_job_done, command)


def ablation_configs(arch: str | None, device: DeviceChoice, only: list[str] | None = None,
                     **options: Any) -> tuple[list[tuple[Any, OverheadConfig]], list[Any]]:
    """The configs of ``overhead --ablate``: each ablation step (detprof.modes.ABLATION) against
    default, validated before anything runs. Returns (steps to measure with their configs, steps
    skipped because they cannot change anything on this device: cuDNN, cuBLAS and TF32 on a CPU).
    ``only`` limits the steps to those modes."""
    from detprof.modes import ABLATION

    known = [step.mode for step in ABLATION]
    for mode in only or []:
        require(mode in known, f"--ablate-modes {mode!r} is not accepted; use any of {', '.join(known)}")
    require("modes" not in options, "--ablate measures every step against default; drop --modes")
    chosen = [step for step in ABLATION if not only or step.mode in only]
    measured = [step for step in chosen if device.kind == "cuda" or not step.gpu_only]
    skipped = [step for step in chosen if step not in measured]
    require(bool(measured), "--ablate-modes names only GPU switches (cuDNN, cuBLAS, TF32), and this device is a CPU")
    return [(step, build_config(arch, device, modes=f"default,{step.mode}", **options)) for step in measured], skipped


def run_ablation(arch: str | None = DEFAULT_ARCH, gpu: str | None = None, db: StoreLike = None,
                 only: list[str] | None = None,
                 on_step: Callable[[Any, int, int], None] | None = None,
                 on_job_done: Callable[[JobOutcome], None] | None = None, command: str | None = None,
                 **options: Any) -> dict[str, Any]:
    """Each switch of the deterministic mode on its own against default (``overhead --ablate``),
    every comparison an adaptive paired measurement stored as its own run. Returns ``steps``: one
    row per measured step (mode, what it changes, run_id, ratio and 95% CI of step time, kernel
    ratio, peak memory of both sides in bytes, memory ratio, verdict) and ``skipped``.
    ``on_step(step, number, total)`` is called as each comparison starts."""
    device = select_device(gpu)
    if options.get("model"):
        arch = None
    plans, skipped = ablation_configs(arch, device, only, **options)
    rows = []
    for number, (step, config) in enumerate(plans, start=1):
        if on_step:
            on_step(step, number, len(plans))
        document = measure_and_store(config, device, db, on_job_done, command)
        rows.append({"mode": step.mode, "changes": step.changes, "run_id": document["run_id"],
                     "ratio": document["ratio"], "ratio_ci": document["ratio_ci"],
                     "ratio_pairs": document["ratio_pairs"], "verdict": document["verdict"],
                     "kernel_ratio": document["kernel_ratio"], "memory_ratio": document["memory_ratio"],
                     "kernel_times_reliable": document["kernel_times_reliable"],
                     "peak_mem_bytes": [m["peak_mem_bytes"] for m in document["modes"]],
                     "step_ms": [m["step_ms"] for m in document["modes"]],
                     "determinism": document["modes"][1]["determinism"],
                     "failed_jobs": len(document["failed_jobs"])})
    workload = plans[0][1].workload
    return {"arch": workload.arch, "workload": asdict(workload), "device": {"kind": device.kind, "name": device.name},
            "steps": rows, "skipped": [{"mode": s.mode, "changes": s.changes,
                                        "reason": "cuDNN, cuBLAS and TF32 exist only on a GPU"} for s in skipped]}
