"""Runner: one fresh process per (arch, mode, repeat); warm-up, timed steps, profiled pass.

Everything is imported lazily: a PyTorch job process imports ``detprof.runner.worker`` and starts
with torch alone, and a TensorFlow job process (detprof.tf.worker) imports
``detprof.runner.processes`` and ``detprof.runner.host`` without torch ever being loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "CPU_DEFAULTS": "config", "GPU_DEFAULTS": "config", "JobSpec": "config", "OverheadConfig": "config",
    "Protocol": "config", "Workload": "config", "default_protocol": "config", "default_workload": "config",
    "plan_jobs": "config", "JobOutcome": "launcher", "ModeSummary": "launcher", "OverheadResult": "launcher",
    "measure_overhead": "launcher",
}


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"detprof.runner.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'detprof.runner' has no attribute {name!r}")


__all__ = sorted(_NAMES)
