"""The checkpoint of ``check --restart-at K``: what a training needs to go on bit for bit in a new
process, saved after step K and loaded there.

detprof's own checkpoint holds everything: the model's and the optimizer's state dicts, the RNG
states of torch (CPU and every CUDA device), Python's ``random`` and numpy's global generator, and
the data position (the steps trained; each step trains on the workload's one batch). A
``--workload`` that gives ``save`` and ``load`` (detprof.workload.UserWorkload) is checkpointed by
its own code instead: that code is what the gate tests, and what it forgets shows up as the
first divergent step, K + 1. Imports torch: job processes only.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from detprof.backends.torch.training import Training

STEP_FILE = "step.txt"  # the data position, beside whichever checkpoint was written


def save_checkpoint(training: Training, folder: str, step: int,
                    user_save: Callable[[str, Any, Any], None] | None = None) -> None:
    """Write ``training``'s state after ``step`` steps into ``folder``: the user's own checkpoint
    (``user_save(path, model, optimizer)``) when given, else detprof's (see the module)."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    if user_save is not None:
        user_save(str(target / "user"), training.model, training.optimizer)
    else:
        import numpy as np

        state = {"model": training.model.state_dict(), "optimizer": training.optimizer.state_dict(),
                 "torch_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                 "python_rng": random.getstate(), "numpy_rng": np.random.get_state()}
        torch.save(state, target / "detprof.pt")
    (target / STEP_FILE).write_text(str(step))


def load_checkpoint(training: Training, folder: str,
                    user_load: Callable[[str, Any, Any], None] | None = None) -> int:
    """Restore ``training`` from ``folder`` (as ``save_checkpoint`` wrote it); returns the steps
    already trained."""
    source = Path(folder)
    if user_load is not None:
        user_load(str(source / "user"), training.model, training.optimizer)
    else:
        import numpy as np

        state = torch.load(source / "detprof.pt", map_location="cpu", weights_only=False)
        training.model.load_state_dict(state["model"])
        training.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        random.setstate(state["python_rng"])
        np.random.set_state(state["numpy_rng"])
    return int((source / STEP_FILE).read_text())
