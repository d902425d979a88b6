"""The measurement of one job, in a fresh process.

The launcher starts each job with ``run_to_file`` in a fresh process (detprof.process.processes);
``python -m detprof.backends.torch.worker SPEC RESULT`` runs one job from a spec file by hand.

Order inside the process: the GPU made current (the parent already set the environment, including
CUDA_VISIBLE_DEVICES=<uuid>), toggles, model, warm-up steps (cuDNN autotuning happens here and is
excluded; the peak memory is read and reset after them), timed steps (CUDA events on GPU,
perf_counter on CPU, with NVML sampling clocks), the steady-state peak memory, a SHA-256
fingerprint of the parameters and buffers, then, for profiled jobs, a separate profiled pass whose
Chrome trace is written gzipped. The result is one JSON file; the process never prints it to stdout.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detprof.backends.torch.observe import changed_switches
from detprof.backends.torch.switches import apply_toggles, capture_nondeterministic_ops, switches_set
from detprof.backends.torch.training import build_training
from detprof.documents import DOCUMENT_VERSION, JobResult, write_json_whole
from detprof.modes import Toggles
from detprof.process.host import cpu_model, peak_rss_bytes, reset_peak_rss
from detprof.runner.config import JobSpec


def _environment(torch: Any, spec: JobSpec) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "threads": torch.get_num_threads(),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cpu": cpu_model(),
        # TF32 decides which kernels run (and how fast) for float32 convolutions and matmuls.
        "tf32": {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                 "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                 "float32_matmul_precision": torch.get_float32_matmul_precision()},
    }
    if spec.device.startswith("cuda"):
        # Read inside the job, from the device it measures: labels and indices can be wrong.
        props = torch.cuda.get_device_properties(torch.device(spec.device))
        uuid = str(getattr(props, "uuid", "") or "")
        env.update(gpu_name=props.name, sm_count=props.multi_processor_count,
                   compute_capability=f"{props.major}.{props.minor}", gpu_memory_bytes=props.total_memory,
                   gpu_uuid=(uuid if not uuid or uuid.startswith("GPU-") else f"GPU-{uuid}"))
    return env


def _timed_steps(torch: Any, step: Callable[[], Any], count: int, on_gpu: bool) -> list[float]:
    """Run ``count`` steps; return each one's time in milliseconds."""
    if on_gpu:
        pairs = []
        for _ in range(count):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            pairs.append((start, end))
        torch.cuda.synchronize()
        return [float(s.elapsed_time(e)) for s, e in pairs]
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def _profiled_pass(torch: Any, step: Callable[[], Any], count: int, on_gpu: bool, trace_path: str) -> list[float]:
    """Profile ``count`` steps after one profiler warm-up step, whose events are discarded (the
    profiler's own start-up would otherwise be billed to the first step). Returns each profiled
    step's wall time in ms, as the profiler slowed it: the profiler records every op, and on a CPU
    that costs a few µs per op, which kernel coverage must be measured against."""
    from torch.profiler import ProfilerActivity, profile, schedule

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    profiled_ms: list[float] = []
    with profile(activities=activities, schedule=schedule(wait=0, warmup=1, active=count, repeat=1)) as prof:
        for index in range(1 + count):
            started = time.perf_counter()
            step()
            if on_gpu:
                torch.cuda.synchronize()
            if index:
                profiled_ms.append((time.perf_counter() - started) * 1000.0)
            prof.step()
    Path(trace_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            plain = os.path.join(scratch, "trace.json")
            prof.export_chrome_trace(plain)
            check_trace_text(plain)
            with open(plain, "rb") as source, gzip.open(trace_path, "wb") as target:
                shutil.copyfileobj(source, target)
            check_gzip_copy(trace_path, os.path.getsize(plain))
    except BaseException:
        Path(trace_path).unlink(missing_ok=True)  # never leave a truncated trace for a job that failed
        raise
    return profiled_ms


class TraceWriteError(OSError):
    """The profiled pass's trace came out empty or truncated (a full disk, usually)."""


def check_trace_text(path: str) -> None:
    """Raise TraceWriteError unless the exported trace is a whole JSON document: non-empty and
    ending in its closing brace. The profiler writes it from C++ and does not report a short write."""
    with open(path, "rb") as trace:
        trace.seek(0, os.SEEK_END)
        size = trace.tell()
        trace.seek(max(0, size - 64))
        tail = trace.read().rstrip()
    if size == 0 or not tail.endswith(b"}"):
        raise TraceWriteError(f"the profiler's trace came out {'empty' if size == 0 else 'truncated'} "
                              f"({size:,} bytes; is the disk full?)")


def check_gzip_copy(path: str, expected_bytes: int) -> None:
    """Raise TraceWriteError unless the gzipped trace decompresses, whole, to ``expected_bytes``."""
    produced = 0
    try:
        with gzip.open(path, "rb") as trace:
            while chunk := trace.read(1 << 20):
                produced += len(chunk)
    except (OSError, EOFError) as error:
        raise TraceWriteError(f"the gzipped trace {path!r} cannot be read back: {error} (is the disk full?)") from None
    if produced != expected_bytes:
        raise TraceWriteError(f"the gzipped trace {path!r} holds {produced:,} of {expected_bytes:,} bytes "
                              "(is the disk full?)")


class PeakMemory:
    """Peak memory of the warm-up and of the timed steps, in bytes.

    On a GPU, ``torch.cuda.max_memory_allocated`` with its peak reset after warm-up, so that the
    steady-state figure excludes cudnn.benchmark's trial workspaces. On a CPU, the process's peak
    resident set (interpreter and torch included), reset after warm-up where Linux allows it
    (``/proc/self/clear_refs``); otherwise the steady figure is the whole process's peak.
    """

    def __init__(self, torch: Any, device: Any, on_gpu: bool) -> None:
        self.torch, self.device, self.on_gpu = torch, device, on_gpu
        self.kind = "cuda_max_allocated" if on_gpu else "process_peak_rss"
        self.reset_after_warmup = False

    def _current_peak(self) -> int:
        if self.on_gpu:
            return int(self.torch.cuda.max_memory_allocated(self.device))
        return peak_rss_bytes()

    def end_warmup(self) -> int:
        """The warm-up peak; then start counting the steady state afresh where possible."""
        peak = self._current_peak()
        if self.on_gpu:
            self.torch.cuda.reset_peak_memory_stats(self.device)
            self.reset_after_warmup = True
        else:
            self.reset_after_warmup = reset_peak_rss()
        return peak

    def steady(self) -> int:
        return self._current_peak()


LAYOUT_JITTER_MAX_BYTES = 4 << 20


def shift_memory_layout(torch: Any) -> list[Any]:
    """Hold a few allocations of random size, from the operating system's entropy, so that this
    process's tensors land at addresses of their own; returns them, to be kept alive.

    Every job is forked from one fork server, so without this all jobs of a mode share one memory
    layout, and that layout can set a CPU step time by ±10% (measured: small-cnn, 6.0 against
    7.1 ms, fixed for every process of a mode within a run and redrawn each run). A CI computed
    from processes that all share it is too narrow; with a layout per process, the pairs sample
    that variation and the CI covers it (benchmarks/layout_effect.py)."""
    entropy = int.from_bytes(os.urandom(8), "little")
    sizes = [entropy % LAYOUT_JITTER_MAX_BYTES, (entropy >> 24) % 65_536, (entropy >> 40) % 4096]
    return [torch.empty(sizes[0], dtype=torch.uint8), bytearray(sizes[1] + 1),
            torch.empty(sizes[2] + 1, dtype=torch.uint8)]


def run_job(spec: JobSpec) -> JobResult:
    """Measure one job in this process; returns the result document (times in ms, memory in bytes).

    Besides the step times it records the peak memory of the warm-up and of the timed steps,
    and a SHA-256 fingerprint of the parameters and buffers after the timed steps (before any
    profiled step), which tells whether repeats of one mode trained bit-identically.
    """
    import torch

    from detprof.backends.torch.fingerprint import state_fingerprint

    layout = shift_memory_layout(torch)  # noqa: F841 (kept alive for the job's lifetime)
    on_gpu = spec.device.startswith("cuda")
    if on_gpu:
        # Current-device calls (CUDA events, synchronize, the allocator's statistics) must act on
        # the measured GPU, not on whatever device 0 is.
        torch.cuda.set_device(torch.device(spec.device))
    if spec.protocol.cpu_threads:
        torch.set_num_threads(spec.protocol.cpu_threads)
    applied = apply_toggles(Toggles(**spec.toggles), compiled=spec.workload.compiled)
    result: JobResult = {"document_version": DOCUMENT_VERSION, "status": "ok", "applied_toggles": applied}
    with capture_nondeterministic_ops() as nondeterministic_ops:
        training = build_training(spec.workload, spec.seed, torch.device(spec.device))
        result["environment"] = _environment(torch, spec)
        memory = PeakMemory(torch, training.device, on_gpu)
        for warmup in range(spec.protocol.warmup_steps):
            if warmup == 0:  # the attention backends that ran, observed outside the timed steps
                result["attention_backends"] = training.probed_step()[1]
            else:
                training.step()
        if on_gpu:
            torch.cuda.synchronize(training.device)
        result["peak_mem_warmup_bytes"] = memory.end_warmup()
        if on_gpu:
            from detprof.gpus import GpuMonitor

            with GpuMonitor(spec.gpu_uuid) as monitor:
                result["step_ms"] = _timed_steps(torch, training.step, spec.protocol.timed_steps, on_gpu)
            result["gpu_monitor"] = monitor.summary()
        else:
            result["step_ms"] = _timed_steps(torch, training.step, spec.protocol.timed_steps, on_gpu)
        result["peak_mem_bytes"] = memory.steady()
        result["peak_mem_kind"] = memory.kind
        result["peak_mem_since_warmup"] = memory.reset_after_warmup
        result["state_sha256"] = state_fingerprint(training.model.state_dict())
        result["steps_trained"] = spec.protocol.warmup_steps + spec.protocol.timed_steps
        if spec.profile and spec.trace_path:
            result["profiled_step_ms"] = _profiled_pass(torch, training.step, spec.protocol.profile_steps, on_gpu,
                                                        spec.trace_path)
            result["trace_path"] = spec.trace_path
    result["nondeterministic_ops"] = sorted(nondeterministic_ops)
    # Read back after every step the workload ran: a step that switches determinism off must not
    # leave the mode reported as what was applied.
    changed = changed_switches(switches_set(Toggles(**spec.toggles), applied), spec.workload.compiled)
    result["switches_changed"] = [f"{name} {was} -> {now}" for name, (was, now) in changed.items()]
    return result


def out_of_memory_errors() -> tuple[type[BaseException], ...]:
    """What running out of memory raises, by type: CUDA's allocator (torch.OutOfMemoryError, which
    older torch has as torch.cuda.OutOfMemoryError) and Python's. The CPU allocator raises a plain
    RuntimeError: that job is reported as failed, with its message."""
    import torch

    return (MemoryError, getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError)


def run_to_file(spec_dict: dict[str, Any], result_path: str) -> int:
    """Entry point of a job process (see detprof.process.processes): run it, write the result file."""
    return _run_and_record(JobSpec.from_json_dict(spec_dict), result_path)


def _run_and_record(spec: JobSpec, result_path: str) -> int:
    """Run one job and write its result document to ``result_path``; returns the exit code."""
    started = time.perf_counter()
    try:
        result = run_job(spec)
        code = 0
    except Exception as error:  # the parent records the failure; one job lost, not the run
        out_of_memory = isinstance(error, out_of_memory_errors())
        result = {"document_version": DOCUMENT_VERSION, "status": "oom" if out_of_memory else "failed",
                  "error": f"{type(error).__name__}: {error}".strip()[:2000],
                  "traceback": traceback.format_exc()[-4000:]}
        code = 1
    result["wall_s"] = time.perf_counter() - started
    write_json_whole(result_path, result)
    return code


def main(argv: list[str]) -> int:
    spec_path, result_path = argv[1], argv[2]
    return _run_and_record(JobSpec.from_json_dict(json.loads(Path(spec_path).read_text())), result_path)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
