"""``detprof.step(model)``: the one line a training loop that updates its weights itself (no
optimizer: ``p.data.add_(p.grad, alpha=-lr)``) adds so that ``check --script`` can watch it.

Outside a watched run it does nothing and costs a function call; inside one (detprof's script
watcher sets ``WATCH``) it records the model's weights as an optimizer step would. Imports nothing.
"""

from __future__ import annotations

from typing import Any

WATCH: Any = None  # the running StepWatch of check --script (detprof.backends.torch.script), else None


def step(model: Any) -> None:
    """Mark the end of one training step of ``model`` (an ``nn.Module``, or an iterable of the
    tensors the step updated): ``check --script`` hashes them here, as it does after an optimizer
    step. A no-op when the script is not run by ``check --script``."""
    if WATCH is not None:
        WATCH.marked_step(model)
