"""Runner: one fresh process per (arch, mode, repeat); warm-up, timed steps, profiled pass.

Everything is imported lazily: a PyTorch job process imports ``detprof.backends.torch.worker`` and starts
with torch alone, and a TensorFlow job process (detprof.backends.tf.worker) imports
``detprof.process.processes`` and ``detprof.process.host`` without torch ever being loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "CPU_DEFAULTS": "runner.config", "GPU_DEFAULTS": "runner.config", "JobSpec": "runner.config",
    "OverheadConfig": "runner.config", "Protocol": "runner.config", "default_protocol": "runner.config",
    "plan_jobs": "runner.config", "JobOutcome": "runner.outcomes", "ModeSummary": "runner.outcomes",
    "OverheadResult": "runner.outcomes", "measure_overhead": "runner.launcher",
    "Workload": "workload", "default_workload": "workload",
}


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"detprof.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'detprof.runner' has no attribute {name!r}")


__all__ = sorted(_NAMES)
