"""The check gates PyTorch runs (detprof.check.gates) and how a side's gate fields change its training.

``GATES`` is what the backend declares in its capabilities; ``TRAINING_CHANGES`` maps a side spec
field to what it does to a built training (detprof.backends.torch.trainer applies each one the spec
holds). The gates not listed there act around the training: threads and device where it is set up,
compile through the workload, restart in the parent (run B in two processes), and the world size
as DDP ranks (detprof.backends.torch.distributed). Imports torch only inside the changes: the
backend's capabilities are read without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detprof.backends.torch.training import Training
    from detprof.check.spec import CheckSideSpec

GATES = frozenset({"threads", "device", "compile", "restart", "workers", "world-size", "bucket-cap", "accumulate"})


def feed_from_loader(training: Training, workers: Any, spec: CheckSideSpec) -> None:
    """The data-loading gate: a new batch every step from a DataLoader with ``workers`` processes."""
    from detprof.backends.torch.loading import feed_from_loader as feed

    feed(training, spec.workload.batch_size, int(workers), spec.seed, spec.steps or 1)


def accumulate(training: Training, micro_batches: Any, _spec: CheckSideSpec) -> None:
    """The gradient-accumulation gate: each step's backward over ``micro_batches`` shares of the batch."""
    training.micro_batches = int(micro_batches)


# A side spec's gate field to how its value changes the training, applied in this order.
TRAINING_CHANGES: dict[str, Callable[[Training, Any, CheckSideSpec], None]] = {
    "loader_workers": feed_from_loader,
    "accumulation": accumulate,
}
