"""The ``overhead`` capability as a Python API: configure, measure, store, and the JSON document.

    from detprof.overhead import run_overhead
    doc = run_overhead("vgg19", gpu="v100")      # dict, as `detprof overhead --json` prints
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from detprof.errors import DetprofError
from detprof.gpus import DeviceChoice, select_device
from detprof.modes import parse_modes
from detprof.runner.config import OverheadConfig, Workload, default_protocol, default_workload
from detprof.runner.launcher import JobOutcome, OverheadResult, measure_overhead
from detprof.stats import verdict
from detprof.store import ResultStore, StoreLike, open_store
from detprof.zoo import MEDIUM_CNN_KERNEL_SIZES, arch_spec

DEFAULT_ARCH = "resnet18"


MAX_BATCH_SIZE = 65_536
MAX_IMAGE_SIZE = 4_096  # pixels per side
MAX_SEED = 2**32 - 1  # what every generator detprof seeds accepts


class OverheadArgumentError(DetprofError, ValueError):
    """A user-supplied value that the overhead measurement cannot take."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise OverheadArgumentError(message)


def build_config(arch: str, device: DeviceChoice, modes: str = "default,deterministic", kernel_size: int | None = None,
                 batch_norm: bool | None = None, batch_size: int | None = None, image_size: int | None = None,
                 warmup_steps: int | None = None, timed_steps: int | None = None, profile_steps: int | None = None,
                 repeats: int | None = None, threads: int | None = None, seed: int = 0,
                 job_timeout_s: float = 1800.0, precision: float | None = None,
                 max_time_s: float | None = None) -> OverheadConfig:
    """Validate the user's choices and fill device-dependent defaults; raises OverheadArgumentError
    (or UnknownArchError / UnknownModeError) naming the bad value and what is accepted.

    ``repeats`` is the number of pairs of processes (one per mode) that always run. The protocol
    is adaptive by default: more pairs follow until the ratio's 95% CI is within ±``precision``
    (a fraction) or ``max_time_s`` seconds are spent. Giving ``repeats`` without ``precision``
    runs exactly that many pairs; ``precision=0`` does the same with the default repeats.
    """
    spec = arch_spec(arch)
    mode_pair = parse_modes(modes)
    _require(kernel_size is None or spec.takes_kernel_size,
             f"--kernel-size applies to medium-cnn only; {spec.name} has no kernel size to choose")
    _require(kernel_size is None or kernel_size in MEDIUM_CNN_KERNEL_SIZES,
             f"--kernel-size {kernel_size} is not accepted; use 1 to 7")
    _require(not batch_norm or spec.takes_batch_norm, f"--bn applies to small-cnn only; {spec.name} has its own "
                                                      "normalisation (or none) built in")
    _require(batch_size is None or 1 <= batch_size <= MAX_BATCH_SIZE,
             f"--batch-size {batch_size} is not accepted; use an integer from 1 to {MAX_BATCH_SIZE:,}")
    _require(image_size is None or image_size >= spec.min_image_size,
             f"--image-size {image_size} is too small for {spec.name}; use >= {spec.min_image_size}")
    _require(image_size is None or image_size <= MAX_IMAGE_SIZE,
             f"--image-size {image_size} is not accepted; use at most {MAX_IMAGE_SIZE:,} pixels")
    _require(0 <= seed <= MAX_SEED, f"--seed {seed} is not accepted; use an integer from 0 to {MAX_SEED:,}")
    cpus = os.cpu_count() or 1
    _require(threads is None or threads <= cpus,
             f"--threads {threads} is not accepted; this machine has {cpus} CPUs: use 1 to {cpus}")
    _require(warmup_steps is None or warmup_steps >= 0, f"--warmup {warmup_steps} is not accepted; use >= 0")
    _require(timed_steps is None or timed_steps >= 1, f"--steps {timed_steps} is not accepted; use >= 1")
    _require(profile_steps is None or profile_steps >= 0,
             f"--profile-steps {profile_steps} is not accepted; use >= 0 (0 skips kernel profiling)")
    _require(repeats is None or repeats >= 1, f"--repeats {repeats} is not accepted; use >= 1")
    _require(threads is None or threads >= 1, f"--threads {threads} is not accepted; use >= 1")
    _require(math.isfinite(job_timeout_s) and job_timeout_s > 0,
             f"--job-timeout {job_timeout_s} is not accepted; use a finite number of seconds > 0")
    _require(precision is None or 0 <= precision < 1,
             f"--precision {precision} is not accepted; use a fraction such as 0.02 (±2%), or 0 for fixed repeats")
    _require(max_time_s is None or max_time_s > 0, f"--max-time {max_time_s} is not accepted; use seconds > 0")
    on_gpu = device.kind == "cuda"
    workload = default_workload(spec.name, on_gpu, batch_size, image_size, kernel_size or 3, bool(batch_norm))
    _check_input_fits(workload, device)
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
                          seed=seed, job_timeout_s=job_timeout_s, gpu_uuid=device.gpu.uuid if device.gpu else None)


def _device_memory_bytes(device: DeviceChoice) -> int | None:
    """Memory of the measuring device in bytes: the GPU's, or the memory available on this machine."""
    if device.gpu is not None:
        return device.gpu.memory_total_bytes
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _check_input_fits(workload: Workload, device: DeviceChoice) -> None:
    """Refuse, before any process starts, a batch whose input alone takes more than a quarter of the
    device's memory: its activations (several times the input, for every layer) cannot fit."""
    memory = _device_memory_bytes(device)
    if memory is None:
        return
    input_bytes = workload.batch_size * 3 * workload.image_size ** 2 * 4  # float32
    side = workload.image_size
    where = f"the {device.name} has" if device.gpu is not None else "this machine has"
    _require(input_bytes <= memory / 4,
             f"--batch-size {workload.batch_size} at {side}x{side} is not accepted: its input alone is "
             f"{input_bytes / 2**30:,.1f} GiB and {where} {memory / 2**30:,.1f} GiB; use a smaller --batch-size or "
             "--image-size")


def summary_document(result: OverheadResult, run_id: int | None = None) -> dict[str, Any]:
    """The JSON document of a measurement (what ``overhead --json`` prints). Times in ms, memory in bytes."""
    config = result.config
    ratio = result.ratio
    env = next((j.environment for j in result.jobs if j.environment), {})
    labels = [m.mode for m in result.modes]
    return {
        "run_id": run_id,
        "created_at": result.created_at,
        "arch": config.workload.arch,
        "framework": arch_spec(config.workload.arch).framework,
        "device": {"kind": result.device_kind, "name": result.device_name, "gpu_index": config.gpu_index,
                   "gpu_uuid": config.gpu_uuid},
        "workload": asdict(config.workload),
        "protocol": asdict(config.protocol),
        "verdict": verdict(ratio, labels[0], labels[1]),
        "modes": [
            {"mode": m.mode, "step_ms": m.step_ms, "step_ms_iqr": m.step_ms_iqr, "noisy": m.noisy,
             "kernel_ms": m.kernel_ms, "kernel_ms_reason": m.kernel_ms_reason, "kernel_coverage": m.kernel_coverage,
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
        "kernel_ratio": result.kernel_ratio,
        "memory_ratio": result.memory_ratio,
        "noisy": any(bool(m.noisy) for m in result.modes),
        "expected_nondeterministic_ops": list(arch_spec(config.workload.arch).known_nondeterministic_ops),
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


def store_result(store: ResultStore, result: OverheadResult) -> int:
    """Save a measurement in one transaction; returns the new run id."""
    document = summary_document(result)
    run = {"created_at": result.created_at, "kind": "overhead", "arch": document["arch"],
           "framework": document["framework"], "device_kind": result.device_kind, "device_name": result.device_name,
           "modes": list(result.config.modes), "command": result.command, "config": result.config.as_dict(),
           "environment": document["environment"], "summary": document}
    return store.save_run(run, [_job_record(j) for j in result.jobs], result.kernel_tables)


API_COMMAND = "Python API: detprof.overhead.run_overhead"
TRACE_OWNER = ".measuring"  # in a trace folder whose run is not stored yet: the measuring process's pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_abandoned_traces(traces: Path) -> list[Path]:
    """Delete trace folders of measurements that never got stored (their process was killed);
    returns what was removed. A folder still being measured into, or already stored, stays."""
    removed = []
    for owner in traces.glob(f"*/{TRACE_OWNER}"):
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue
        if not _alive(pid):
            shutil.rmtree(owner.parent, ignore_errors=True)
            removed.append(owner.parent)
    return removed


def measure_and_store(config: OverheadConfig, device: DeviceChoice, db: StoreLike = None,
                      on_job_done: Callable[[JobOutcome], None] | None = None,
                      command: str | None = None) -> dict[str, Any]:
    """Run a validated config, store it (traces beside the database) and return its summary document.

    ``command`` is what the stored run records as its origin (the command line passes its own;
    from Python it is API_COMMAND). An interrupted or failed measurement leaves no trace folder
    behind; one killed outright is cleaned up by the next measurement into the same store. When the
    database stays locked, the measurement is kept as a pending file (StoreLockedError says where).
    """
    with open_store(db, create=True) as store:
        store.store_pending()
        traces = store.path.parent / "traces"
        remove_abandoned_traces(traces)
        trace_dir = traces / uuid.uuid4().hex[:12]
        trace_dir.mkdir(parents=True)
        (trace_dir / TRACE_OWNER).write_text(str(os.getpid()))
        try:
            result = measure_overhead(config, device.kind, device.name, str(trace_dir), command=command or API_COMMAND,
                                      on_job_done=on_job_done)
        except BaseException:  # Ctrl-C included: nothing is stored, so nothing is kept
            shutil.rmtree(trace_dir, ignore_errors=True)
            raise
        try:
            run_id = store_result(store, result)
        finally:  # stored, or kept as a pending file that refers to the traces: either way they stay
            (trace_dir / TRACE_OWNER).unlink(missing_ok=True)
    return summary_document(result, run_id)


def run_overhead(arch: str = DEFAULT_ARCH, gpu: str | None = None, db: StoreLike = None,
                 on_job_done: Callable[[JobOutcome], None] | None = None, command: str | None = None,
                 **options: Any) -> dict[str, Any]:
    """Measure, store and return the summary document of one overhead comparison.

    ``options`` are build_config's keyword arguments (modes, kernel_size, batch_size, ...).
    """
    device = select_device(gpu)
    return measure_and_store(build_config(arch, device, **options), device, db, on_job_done, command)
