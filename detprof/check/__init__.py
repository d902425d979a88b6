"""Check: is a training run really bitwise reproducible, which op breaks it, and what determinism
needs on this device (check, audit, batch invariance); see ``detprof.check.run``.

Names are imported on first use, so that ``detprof.check.limits`` (what the command line's help
reads) loads no framework and no numpy."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_NAMES = {"CheckError": "detprof.process.results", "run_audit": "detprof.check.run",
          "run_batch_invariance": "detprof.check.run", "run_check": "detprof.check.run"}

if TYPE_CHECKING:
    from detprof.check.run import run_audit, run_batch_invariance, run_check
    from detprof.process.results import CheckError


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'detprof.check' has no attribute {name!r}")


__all__ = ["CheckError", "run_audit", "run_batch_invariance", "run_check"]
