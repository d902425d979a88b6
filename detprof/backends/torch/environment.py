"""The environment a record was made in, read inside the process that trained: what could make two
records of the same workload differ (detprof.records.explain ranks these facts).

Versions of torch and its numeric libraries, the GPU (name, architecture, UUID, driver), the CPU
(model, the vector instruction sets it offers, the capability ATen's kernels dispatched to), the
BLAS torch was built with, the threads, and the environment variables that change numerics.
Imports torch.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import torch

from detprof.process.host import cpu_model

# The CPU flags that decide which vector kernels run (x86 and Arm); the rest of /proc/cpuinfo's
# flags (power management, virtualisation) cannot change a result.
_ISA_FLAG = re.compile(r"^(sse\d(_\d)?|ssse3|avx\w*|fma\w*|f16c|amx\w*|asimd\w*|sve\w*|neon|bf16|i8mm|fphp)$")
# Variables that change numerics or the kernels chosen, read as the run saw them (NCCL_* too).
NUMERIC_VARIABLES = ("ATEN_CPU_CAPABILITY", "CUBLAS_WORKSPACE_CONFIG", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
                     "MKL_NUM_THREADS", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_CORETYPE",
                     "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "NVIDIA_TF32_OVERRIDE", "PYTHONHASHSEED")


def isa_flags() -> list[str]:
    """The CPU's vector instruction-set flags (sorted), from /proc/cpuinfo; [] where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return sorted({flag for flag in line.split(":", 1)[1].split() if _ISA_FLAG.match(flag)})
    except OSError:
        pass
    return []


def blas() -> str:
    """The BLAS torch was built with and its version, as torch's build configuration names them
    ("mkl: Intel(R) oneAPI Math Kernel Library Version 2024.2 ..."), or "" when it says nothing."""
    shown = torch.__config__.show()
    info = re.search(r"BLAS_INFO=(\w+)", shown)
    library = next((line.strip(" -") for line in shown.splitlines() if "Math Kernel Library" in line
                    or "OpenBLAS" in line or "BLIS" in line or "Accelerate" in line), "")
    return ": ".join(part for part in (info.group(1) if info else "", library) if part)


def _driver() -> str | None:
    """The NVIDIA driver's version (nvidia-smi), or None without one."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def _gpu(device: torch.device) -> dict[str, Any] | None:
    """Name, architecture (sm_XY), UUID and driver of the GPU a run used; None on the CPU."""
    if device.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(device)
    uuid = str(getattr(props, "uuid", "") or "")
    return {"name": props.name, "architecture": f"sm_{props.major}{props.minor}",
            "uuid": uuid if not uuid or uuid.startswith("GPU-") else f"GPU-{uuid}", "driver": _driver()}


def environment_fingerprint(device: torch.device, switches: dict[str, object]) -> dict[str, Any]:
    """Everything about this process that could change a training's bits (see the module
    docstring); ``switches`` are the determinism switches as the run read them back."""
    nccl = None
    if torch.cuda.is_available() and hasattr(torch.cuda, "nccl"):
        try:
            version = torch.cuda.nccl.version()
            nccl = ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
        except Exception:  # noqa: BLE001 - a build without NCCL
            nccl = None
    variables = {name: os.environ[name] for name in NUMERIC_VARIABLES if name in os.environ}
    variables.update({name: value for name, value in os.environ.items() if name.startswith("NCCL_")})
    return {
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None,
        "nccl": nccl, "gpu": _gpu(device),
        "cpu": cpu_model(), "isa": isa_flags(), "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": blas(), "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
        "switches": {name: value for name, value in sorted(switches.items())},
        "variables": dict(sorted(variables.items())),
        "python": platform.python_version(), "numpy": _numpy_version(), "platform": platform.platform(),
        "machine": platform.machine(),
    }


def _numpy_version() -> str | None:
    try:
        import numpy

        return str(numpy.__version__)
    except ImportError:
        return None
