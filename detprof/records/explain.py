"""Which differences between two records' environments could explain a difference in their bits,
ranked. One row of ``FACTORS`` per fact a record keeps, in the order of how often such a
difference changes a training's numerics, with the device kind it matters on; a difference in a
factor of neither record's device is ranked after the rest (a CUDA version on two CPU runs).

Adding a factor: a row here, and its value in the environment fingerprint the backend writes
(detprof.backends.torch.environment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ANY, CPU, CUDA = "any", "cpu", "cuda"


@dataclass(frozen=True)
class Factor:
    """One fact of a record's environment that can change its bits."""

    path: str  # where the value sits in the environment fingerprint, dotted ("gpu.architecture")
    label: str  # how a person names it
    why: str  # how a difference in it changes results
    device: str = ANY  # the device kind on which it matters: any, cpu or cuda


FACTORS: tuple[Factor, ...] = (
    Factor("aten_cpu_capability", "ATen CPU capability", "ATen dispatches its CPU kernels to another vector width, "
                                                         "which sums in another order", CPU),
    Factor("variables.ATEN_CPU_CAPABILITY", "ATEN_CPU_CAPABILITY", "it caps the vector kernels ATen may use", CPU),
    Factor("gpu.architecture", "GPU architecture", "other kernels, tile shapes and instructions", CUDA),
    Factor("gpu.name", "GPU model", "other SM counts pick other kernels and split-K factors", CUDA),
    Factor("torch", "torch version", "kernels and their dispatch change between releases"),
    Factor("cudnn", "cuDNN version", "convolution algorithms change between releases", CUDA),
    Factor("cuda", "CUDA version", "cuBLAS's kernels and heuristics come with it", CUDA),
    Factor("blas", "BLAS library", "its matrix products block and sum in their own order", CPU),
    Factor("switches", "determinism switches", "deterministic algorithms, cuDNN and TF32 settings choose the kernels"),
    Factor("threads", "CPU threads", "reductions split across threads sum in another order", CPU),
    Factor("variables.CUBLAS_WORKSPACE_CONFIG", "CUBLAS_WORKSPACE_CONFIG",
           "without a fixed workspace cuBLAS may pick split-K reductions", CUDA),
    Factor("variables.MKL_CBWR", "MKL_CBWR", "MKL's conditional numerical reproducibility path", CPU),
    Factor("variables.MKL_ENABLE_INSTRUCTIONS", "MKL_ENABLE_INSTRUCTIONS", "caps MKL's vector width", CPU),
    Factor("variables.NVIDIA_TF32_OVERRIDE", "NVIDIA_TF32_OVERRIDE", "turns TF32 on or off under the library", CUDA),
    Factor("variables.OMP_NUM_THREADS", "OMP_NUM_THREADS", "OpenMP's thread count for reductions", CPU),
    Factor("variables.MKL_NUM_THREADS", "MKL_NUM_THREADS", "MKL's thread count for products", CPU),
    Factor("isa", "CPU instruction sets", "another vector width or FMA changes the kernels' arithmetic", CPU),
    Factor("cpu", "CPU model", "another CPU may offer other instructions and cache sizes", CPU),
    Factor("interop_threads", "inter-op threads", "ops run side by side in another order", CPU),
    Factor("nccl", "NCCL version", "all-reduce algorithms and their order change", CUDA),
    Factor("variables.NCCL_ALGO", "NCCL_ALGO", "ring and tree all-reduces sum in other orders", CUDA),
    Factor("variables.NCCL_PROTO", "NCCL_PROTO", "the all-reduce's protocol", CUDA),
    Factor("gpu.driver", "NVIDIA driver", "rarely: the driver ships the PTX compiler", CUDA),
    Factor("numpy", "numpy version", "rarely: data made in numpy"),
    Factor("python", "Python version", "rarely: hashing and data order in Python code"),
    Factor("variables.PYTHONHASHSEED", "PYTHONHASHSEED", "the order of sets, which code may iterate"),
    Factor("platform", "operating system", "rarely: the C library's math functions"),
    Factor("gpu.uuid", "GPU (same model, another card)", "the same kernels: a hardware fault, if anything", CUDA),
)


def _value(environment: dict[str, Any], path: str) -> Any:
    value: Any = environment
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _other_variables(env_a: dict[str, Any], env_b: dict[str, Any]) -> list[str]:
    """Variables the records hold that no factor names (NCCL_* the table does not list, say)."""
    named = {factor.path.removeprefix("variables.") for factor in FACTORS if factor.path.startswith("variables.")}
    found = [variables for variables in (env_a.get("variables"), env_b.get("variables")) if isinstance(variables, dict)]
    return sorted({str(name) for variables in found for name in variables} - named)


def ranked_differences(env_a: dict[str, Any], env_b: dict[str, Any], devices: set[str]) -> list[dict[str, Any]]:
    """The facts on which two environments differ, most likely cause first: each with ``factor``
    (its label), ``a`` and ``b`` (the values; None where a record has none), ``why`` and
    ``relevant`` (False for a factor of a device neither record ran on). ``devices`` are the
    records' device kinds ("cpu", "cuda")."""
    found: list[dict[str, Any]] = []
    rows = [*FACTORS, *(Factor(f"variables.{name}", name, "a variable the run saw") for name in
                        _other_variables(env_a, env_b))]
    for factor in rows:
        a, b = _value(env_a, factor.path), _value(env_b, factor.path)
        if a == b:
            continue
        relevant = factor.device == ANY or factor.device in devices
        if isinstance(a, dict) and isinstance(b, dict):  # name the keys that differ, not the whole dict
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            a, b = {k: a.get(k) for k in keys}, {k: b.get(k) for k in keys}
        elif isinstance(a, list) and isinstance(b, list):  # the items one has and the other has not
            a, b = [x for x in a if x not in b], [x for x in b if x not in a]
        found.append({"factor": factor.label, "path": factor.path, "a": a, "b": b, "why": factor.why,
                      "relevant": relevant})
    return sorted(found, key=lambda row: not row["relevant"])  # stable: the table's order within each
