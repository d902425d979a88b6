"""The TensorFlow backend: Keras models under detprof's arch names, and the job process that
measures them. Nothing in this package imports torch (TensorFlow and PyTorch never share a
process), and nothing imports TensorFlow until a job runs: the measuring process only checks that
it is installed (``tensorflow_available``).
"""

from __future__ import annotations

import importlib.util

from detprof.errors import DetprofError

INSTALL_HINT = "pip install 'detprof[tf]' (or 'detprof[tf-cpu]' where there is no GPU)"
FRAMEWORK_NAMES = {"pytorch": "pytorch", "torch": "pytorch", "tf": "tensorflow", "tensorflow": "tensorflow"}
TF_MODES = ("default", "deterministic")


class TensorFlowMissingError(DetprofError):
    """--framework tf was asked for where TensorFlow is not installed."""


def canonical_framework(name: str) -> str:
    """``pytorch`` or ``tensorflow`` for what a user typed (torch, tf, ...); ArgumentError otherwise."""
    from detprof.errors import require

    key = name.strip().lower()
    require(key in FRAMEWORK_NAMES, f"--framework {name!r} is not accepted; use pytorch or tf (tensorflow)")
    return FRAMEWORK_NAMES[key]


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
