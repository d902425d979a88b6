"""The TensorFlow backend: Keras models under detprof's arch names (``zoo``), the training step its
job and check processes share (``training``), the job process that measures one (``worker``) and
the check run (``trainer``). Nothing in this package imports torch at import time, and its
processes never do (TensorFlow and PyTorch never share a process); nothing imports TensorFlow
until a job runs: the measuring process only checks that it is installed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detprof.backend import Capabilities, require_support
from detprof.backends.tf.processes import (
    INSTALL_HINT,
    TF_MODES,
    TensorFlowMissingError,
    require_tensorflow,
    require_tf_modes,
    run_tf_process,
    tensorflow_available,
    tf_toggles,
)
from detprof.documents import CheckRunResult, JobResult
from detprof.errors import ArgumentError, require
from detprof.workload.request import REQUEST_FIELDS

if TYPE_CHECKING:
    from detprof.check.spec import CheckSideSpec, ScriptSideSpec
    from detprof.documents import StabilityRunSpec
    from detprof.infer.spec import InferenceSpec
    from detprof.process.child import ChildResult
    from detprof.workload.request import WorkloadRequest
    from detprof.workload.spec import Workload

WORKER = "detprof.backends.tf.worker"
TRAINER = "detprof.backends.tf.trainer"

# Why Keras' counts differ from the PyTorch models' (same arch name, same layers where it matters).
KERAS_NOTES = {
    "resnet50": "Keras' ResNets give every convolution a bias, and Keras counts BatchNorm's moving statistics",
    "resnet152": "Keras' ResNets give every convolution a bias, and Keras counts BatchNorm's moving statistics",
    "inception-v3": "Keras' InceptionV3 has no auxiliary classifier",
    "efficientnet-b0": "Keras' EfficientNetB0 also holds its input normalisation layer's statistics",
}
KERAS_COUNT_NOTE = "Keras counts BatchNorm's moving mean and variance (PyTorch keeps them as buffers)"


class TensorFlowBackend:
    """Keras models in TensorFlow, default and op-deterministic modes, each job a new interpreter."""

    name = "tensorflow"
    label = "TensorFlow"
    option = "--framework tf"
    # Keras zoo networks only: no user module or training step, no compiler or SDPA backend to choose.
    supports = Capabilities(own_model=False, locate_op=False, batch_invariance=False, audit=False,
                            request_fields=REQUEST_FIELDS - {"model", "workload", "compiled", "sdpa_backend"})

    def check_modes(self, modes: list[str] | tuple[str, ...], label: str = "mode") -> None:
        require_tf_modes(modes, label)

    def toggles(self, mode: str) -> dict[str, Any]:
        return dict(tf_toggles(mode))

    def check_workload(self, request: WorkloadRequest) -> None:
        from detprof.backends.tf.zoo import KERAS_MIN_IMAGE_SIZE, TF_ARCHS
        from detprof.zoo import canonical_arch

        arch = canonical_arch(request.arch) if request.arch else None
        require(arch in TF_ARCHS,
                f"--arch {request.arch} is not available with --framework tf; TensorFlow archs: {', '.join(TF_ARCHS)}")
        minimum = KERAS_MIN_IMAGE_SIZE.get(str(arch))
        require(minimum is None or request.image_size is None or request.image_size >= minimum,
                f"--image-size {request.image_size} is too small for Keras' {request.arch}; use >= {minimum}")

    def check_user_code(self, workload: Workload, on_gpu: bool) -> None:
        return None  # check_workload refuses --model and --workload

    def determinism_requested(self, toggles: dict[str, Any]) -> tuple[bool, bool]:
        requested = bool(toggles.get("tf_op_determinism"))
        return requested, requested  # op determinism is one switch: asked for, it is the whole request

    def trace_name(self, stem: str) -> str:
        return stem  # a TensorBoard log folder holding the job's *.xplane.pb

    def start_job(self, spec: dict[str, Any], scratch: str, gpu_uuid: str | None, timeout_s: float) -> ChildResult:
        return run_tf_process(WORKER, spec, scratch, gpu_uuid, timeout_s, JobResult)

    def run_check_side(self, spec: CheckSideSpec, gpu_uuid: str | None, timeout_s: float) -> dict[str, Any]:
        """The TensorFlow side of a check in a new interpreter; its result document, with the final
        weights as numpy arrays (``state``)."""
        import numpy as np

        from detprof.process.results import side_result

        with tempfile.TemporaryDirectory(prefix="detprof-check-") as scratch:
            out = Path(scratch, "result.json")  # detprof.process.child.RESULT_FILE
            ended = run_tf_process(TRAINER, spec.to_json(), scratch, gpu_uuid, timeout_s, CheckRunResult)
            document = side_result(ended, timeout_s)
            weights = Path(str(out) + ".npz")
            if weights.exists():
                with np.load(weights) as arrays:
                    document["state"] = {name: arrays[f"w{index}"].copy()
                                         for index, name in enumerate(document["state_names"])}
        return document

    def run_script_side(self, spec: ScriptSideSpec, folder: Path, timeout_s: float) -> dict[str, Any]:
        require_support(self, "script", "--script")  # raises: this backend watches no scripts
        return {}

    def run_stability_run(self, spec: StabilityRunSpec, out_dir: Path, environment: dict[str, str],
                          timeout_s: float) -> ChildResult:
        raise ArgumentError("detprof stability trains with PyTorch; it has no TensorFlow runs")

    def run_inference(self, spec: InferenceSpec, folder: Path, gpu_uuid: str | None, timeout_s: float) -> ChildResult:
        raise ArgumentError("detprof infer decodes with PyTorch; it has no TensorFlow runs")

    def read_state(self, path: Path) -> dict[str, Any]:
        raise ArgumentError("detprof stability trains with PyTorch; it has no TensorFlow states")

    def expected_nondeterministic_ops(self, workload: Workload) -> list[str]:
        return []  # PyTorch's list; TensorFlow refuses such ops in deterministic mode instead

    def zoo_rows(self) -> list[dict[str, Any]]:
        """One row per TensorFlow arch, with Keras' own parameter counts: ``params`` (every weight,
        as ``model.count_params()``) and ``trainable_params``, from kernels_db/keras_zoo.csv
        (TensorFlow is not imported)."""
        from detprof.backends.tf.zoo import keras_counts
        from detprof.zoo import ARCHS

        rows: list[dict[str, Any]] = []
        for arch, count in keras_counts().items():
            note = KERAS_NOTES.get(arch) or (KERAS_COUNT_NOTE if count.params != count.trainable_params else "")
            rows.append({"arch": arch, "framework": self.name, "family": ARCHS[arch].family, "params": count.params,
                         "trainable_params": count.trainable_params, "input": list(count.input),
                         "num_classes": count.num_classes, "options": [self.option]
                         + (["--kernel-size 1..7"] if ARCHS[arch].takes_kernel_size else [])
                         + (["--bn"] if ARCHS[arch].takes_batch_norm else []),
                         "notes": note, "keras": count.application})
        return rows


BACKEND = TensorFlowBackend()

__all__ = ["BACKEND", "INSTALL_HINT", "TF_MODES", "TensorFlowBackend", "TensorFlowMissingError", "require_tensorflow",
           "tensorflow_available"]
