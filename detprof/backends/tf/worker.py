"""The measurement of one TensorFlow job, in a new interpreter that never loads torch.

    python -m detprof.backends.tf.worker SPEC.json RESULT.json --parent PID

The launcher (detprof.runner.launcher) starts it with the job's spec, the same JSON a PyTorch job
gets, and reads back a result document of the same form. Order inside the process: threads and
GPU memory growth (before TensorFlow touches a device), seeds (``keras.utils.set_random_seed``,
always, so that both modes start from the same weights and data), TensorFlow's op determinism in
the deterministic mode, the model and a ``tf.function`` training step (SGD with momentum, as the
PyTorch jobs) on synthetic data placed on the device, warm-up steps (tracing, autotuning) whose
peak memory is read and reset, timed steps (each synchronised, ``perf_counter``), the steady-state
peak memory, a SHA-256 fingerprint of the weights, then, for profiled jobs, a profiled pass whose
``*.xplane.pb`` is kept for TensorBoard and read by detprof.kernels.xplane.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from detprof.backends.tf.training import keras_training
from detprof.documents import DOCUMENT_VERSION, JobResult, write_json_whole
from detprof.process.host import cpu_model, peak_rss_bytes, reset_peak_rss
from detprof.process.processes import die_with_parent_in

STEP_MARKER = "train"  # the name of the profiler's step markers (with step_num)
# How TensorFlow names an op it refuses in deterministic mode (its UnimplementedError messages:
# "A deterministic GPU implementation of AdjustContrastv2 is not currently available. [Op:...]",
# "Deterministic GPU implementation of SoftmaxCrossEntropyWithLogits not available.").
REFUSED_OP = re.compile(r"\[Op:([A-Za-z0-9_]+)\]")
REFUSED_WHAT = re.compile(r"[Dd]eterministic GPU implementation of (.+?)(?:,| is not| not available)")


def refused_op(message: str) -> str | None:
    """The op an UnimplementedError of op determinism names: its ``[Op:...]`` tag, else what the
    sentence says has no deterministic implementation; None for another message."""
    what = REFUSED_WHAT.search(message)
    if what is None:
        return None
    tag = REFUSED_OP.search(message)
    return tag.group(1) if tag else what.group(1).strip()


def _environment(tf: Any, keras: Any, deterministic: bool, on_gpu: bool) -> dict[str, Any]:
    build = tf.sysconfig.get_build_info()
    env: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(), "framework": "tensorflow",
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "cuda": build.get("cuda_version"), "cudnn": build.get("cudnn_version"),
        "threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "op_determinism": deterministic, "image_data_format": keras.backend.image_data_format(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "cpu": cpu_model(),
    }
    if on_gpu:
        gpu = tf.config.list_physical_devices("GPU")[0]
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")
        env.update(gpu_name=details.get("device_name"),
                   compute_capability=".".join(map(str, capability)) if capability else None)
    return env


def _fingerprint(model: Any) -> str:
    """SHA-256 (hex) of every weight (trainable or not): name, dtype, shape and raw bytes, in order."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = weight.numpy()
        digest.update(f"{getattr(weight, 'path', weight.name)}|{value.dtype}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _sync(tf: Any, loss: Any) -> None:
    """Wait for everything the step queued (the weight updates too, not only the loss)."""
    sync = getattr(getattr(tf.test, "experimental", None), "sync_devices", None)
    if sync is not None:
        sync()
    loss.numpy()


def run_job(spec: dict[str, Any]) -> JobResult:
    """Measure one job in this process; the result document has the PyTorch worker's form (times in
    ms, memory in bytes)."""
    protocol = spec["protocol"]
    on_gpu = spec["device"].startswith("cuda")
    import tensorflow as tf

    if protocol.get("cpu_threads"):
        tf.config.threading.set_intra_op_parallelism_threads(protocol["cpu_threads"])
        tf.config.threading.set_inter_op_parallelism_threads(protocol["cpu_threads"])
    if on_gpu:
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)  # peak memory is what the job used
    import keras

    deterministic = spec["mode"] == "deterministic"
    keras.utils.set_random_seed(spec["seed"])
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    applied = {"op_determinism": deterministic, "seeds": "keras.utils.set_random_seed"}
    result: JobResult = {"document_version": DOCUMENT_VERSION, "status": "ok", "applied_toggles": applied}
    device = "/GPU:0" if on_gpu else "/CPU:0"
    training = keras_training(tf, keras, spec["workload"], spec["seed"], device)
    step, model = training.step, training.model
    result["environment"] = _environment(tf, keras, deterministic, on_gpu)

    def peak() -> int:
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"]) if on_gpu else peak_rss_bytes()

    with tf.device(device):
        for _ in range(protocol["warmup_steps"]):
            _sync(tf, step())
        result["peak_mem_warmup_bytes"] = peak()
        if on_gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")
            result["peak_mem_since_warmup"] = True
        else:
            result["peak_mem_since_warmup"] = reset_peak_rss()
        times = []
        for _ in range(protocol["timed_steps"]):
            started = time.perf_counter()
            _sync(tf, step())
            times.append((time.perf_counter() - started) * 1000.0)
        result["step_ms"] = times
        result["peak_mem_bytes"] = peak()
        result["peak_mem_kind"] = "tf_gpu_peak" if on_gpu else "process_peak_rss"
        result["state_sha256"] = _fingerprint(model)
        result["steps_trained"] = protocol["warmup_steps"] + protocol["timed_steps"]
        if spec.get("profile") and spec.get("trace_path") and protocol["profile_steps"] > 0:
            result["trace_path"], result["profiled_step_ms"] = _profiled_pass(tf, step, protocol["profile_steps"],
                                                                              spec["trace_path"])
    result["nondeterministic_ops"] = []
    result["environment"]["torch_loaded"] = "torch" in sys.modules  # must stay False: never both in one process
    return result


def _profiled_pass(tf: Any, step: Any, count: int, logdir: str) -> tuple[str, list[float]]:
    """Profile ``count`` steps, each marked with its step number; returns the ``*.xplane.pb`` path
    (under ``logdir``, which TensorBoard opens as it is) and each profiled step's wall time in ms,
    as the profiler slowed it (kernel coverage is measured against it)."""
    _sync(tf, step())  # one step outside the profile: the profiler's start-up is not billed to a step
    tf.profiler.experimental.start(logdir)
    profiled_ms = []
    try:
        for number in range(count):
            started = time.perf_counter()
            with tf.profiler.experimental.Trace(STEP_MARKER, step_num=number, _r=1):
                _sync(tf, step())
            profiled_ms.append((time.perf_counter() - started) * 1000.0)
    finally:
        tf.profiler.experimental.stop()
    found = sorted(Path(logdir).glob("plugins/profile/*/*.xplane.pb"))
    if not found:
        raise RuntimeError(f"the TensorFlow profiler wrote no *.xplane.pb under {logdir}")
    return str(found[-1]), profiled_ms


def _failure(error: BaseException) -> JobResult:
    import tensorflow as tf

    text = f"{type(error).__name__}: {error}".strip()
    # by type: TensorFlow's allocator raises ResourceExhaustedError, Python MemoryError
    out_of_memory = isinstance(error, MemoryError | tf.errors.ResourceExhaustedError)
    op = refused_op(text) if type(error).__name__ == "UnimplementedError" else None
    ops = [op] if op else []
    return {"document_version": DOCUMENT_VERSION, "status": "oom" if out_of_memory else "failed",
            "error": text[:2000], "nondeterministic_ops": ops, "traceback": traceback.format_exc()[-4000:]}


def main(argv: list[str]) -> int:
    """``SPEC RESULT --parent PID``: run the job, write the result document, exit 0 (1 on failure)."""
    spec_path, result_path = die_with_parent_in(argv)
    spec = json.loads(Path(spec_path).read_text())
    started = time.perf_counter()
    try:
        result = run_job(spec)
        code = 0
    except Exception as error:  # the parent records the failure; one job lost, not the run
        result = _failure(error)
        code = 1
    result["wall_s"] = time.perf_counter() - started
    write_json_whole(result_path, result)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
