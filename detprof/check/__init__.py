"""Check: is a training run really bitwise reproducible, which op breaks it, and what determinism
needs on this device (check, audit, batch invariance); see ``detprof.check.run``."""

from detprof.backends.results import CheckError
from detprof.check.run import run_audit, run_batch_invariance, run_check

__all__ = ["CheckError", "run_audit", "run_batch_invariance", "run_check"]
