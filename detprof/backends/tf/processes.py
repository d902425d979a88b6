"""How the TensorFlow backend's processes start: whether TensorFlow is installed (checked without
importing it), its modes and their toggles, and a new interpreter with a TensorFlow job's
environment for each job or check run (never a fork of a process that has imported torch)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from detprof.errors import DetprofError

if TYPE_CHECKING:
    from detprof.process.child import ChildResult

INSTALL_HINT = "pip install 'detprof[tf]' (or 'detprof[tf-cpu]' where there is no GPU)"
TF_MODES = ("default", "deterministic")


class TensorFlowMissingError(DetprofError):
    """--framework tf was asked for where TensorFlow is not installed."""


def tensorflow_available() -> bool:
    """Whether TensorFlow can be imported here (checked without importing it)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a broken entry in sys.modules
        return False


def require_tensorflow() -> None:
    """Raise TensorFlowMissingError (one line, with the install command) unless TensorFlow is installed."""
    if not tensorflow_available():
        raise TensorFlowMissingError(f"--framework tf needs TensorFlow, which is not installed here; install it with: "
                                     f"{INSTALL_HINT}")


def tf_toggles(mode: str) -> dict[str, bool]:
    """What a TensorFlow mode switches: ``tf.config.experimental.enable_op_determinism`` or nothing
    (seeds are always set, so that both modes start from the same weights and data)."""
    return {"tf_op_determinism": mode == "deterministic"}


def tf_environment(base: dict[str, str], gpu_uuid: str | None) -> dict[str, str]:
    """The environment of a TensorFlow job: ``base`` without CUBLAS_WORKSPACE_CONFIG (PyTorch's
    requirement, not TensorFlow's: left in, it would change cuBLAS for one mode only), the GPU
    narrowed to its UUID, or every GPU hidden for a CPU job, and TensorFlow's C++ logging quiet."""
    env = dict(base)
    env.pop("CUBLAS_WORKSPACE_CONFIG", None)
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env["CUDA_VISIBLE_DEVICES"] = gpu_uuid or ""
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def require_tf_modes(modes: list[str] | tuple[str, ...], label: str = "mode") -> None:
    """Raise ArgumentError naming the first of ``modes`` TensorFlow has no such mode for (``label``
    is how the message names it: ``mode`` or ``--mode``), then TensorFlowMissingError unless
    TensorFlow is installed."""
    from detprof.errors import require

    for mode in modes:
        require(mode in TF_MODES, f"{label} {mode!r} is not available with --framework tf; TensorFlow modes: "
                                  f"{', '.join(TF_MODES)}")
    require_tensorflow()


def run_tf_process(module: str, spec: dict[str, object], scratch: str, gpu_uuid: str | None,
                   timeout_s: float | None, reads: type) -> ChildResult:
    """Run ``python -m module SPEC RESULT`` (a TensorFlow job or check run) in a new interpreter with
    a TensorFlow job's environment, its spec written to ``scratch``, its result (a ``reads``, a
    TypedDict) and log there too."""
    import json
    import os

    from detprof.process.child import Child, run_child

    spec_file = Path(scratch, "spec.json")
    spec_file.write_text(json.dumps(spec))
    return run_child(Child(module, (str(spec_file),), tf_environment(dict(os.environ), gpu_uuid), timeout_s,
                           interpreter=True, reads=reads), Path(scratch))
