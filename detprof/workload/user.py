"""Your own training step wherever a zoo arch is accepted: ``--workload MODULE:FUNCTION``.

``FUNCTION(batch_size, device)`` returns what one training step needs, in one of three forms:

- a plain tuple ``(model, make_batch, loss_fn)``, so a workload file needs no detprof import;
- a pair ``(model, make_batch)`` for a model that computes its own loss (Hugging Face style: the
  batch is a dict that holds the labels, and the output has a ``loss``);
- a ``UserWorkload`` (below), which also lets you say how the model is called.

``make_batch(generator)`` returns one batch (a tensor, a tuple of tensors or a dict of tensors)
drawn on the CPU from the ``torch.Generator`` detprof gives it, so that two runs draw the same
bits; detprof moves the batch to the device. The model is called with the batch spread out: a
dict as keyword arguments, a tuple as positional arguments, a tensor as the one argument.
``loss_fn(output, batch)`` returns a scalar tensor. detprof seeds torch before calling FUNCTION,
so the model's initialisation is seeded too; ``device`` is a ``torch.device`` (the model may be
built there or on the CPU: detprof moves it).

The code runs in child processes only: once before anything is measured, to check the reference
(one forward pass and the loss, on the meta device when the model allows, else on a batch of at
most two examples on the CPU), and in every job. Anything wrong there (no such function, a wrong
return type, a batch the model rejects, a loss that is not a scalar) is one line and exit 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from detprof.usercode import UserCodeError

OPTION = "--workload"
ACCEPTED_RETURNS = ("(model, make_batch, loss_fn), (model, make_batch) for a model that returns its own loss, or "
                    "detprof.workload.UserWorkload")


class UserWorkloadError(UserCodeError):
    """A --workload reference that does not lead to a working training step."""


@dataclass
class UserWorkload:
    """What ``FUNCTION(batch_size, device)`` may return for ``--workload``.

    ``model`` is a ``torch.nn.Module``; ``make_batch(generator)`` returns one batch drawn from the
    given ``torch.Generator`` (a tensor, a tuple of tensors or a dict of tensors, on the CPU);
    ``loss(output, batch)`` returns a scalar tensor, or is None when the model's output holds
    its own ``loss``; ``forward(model, batch)`` returns the model's output, or is None to call the
    model with the batch spread out (dict as keyword arguments, tuple as positional ones).
    ``save(path, model, optimizer)`` and ``load(path, model, optimizer)`` are your checkpoint code,
    which ``check --restart-at`` tests (None: detprof's own checkpoint, which holds everything).
    ``dataset`` is a ``torch.utils.data.Dataset`` of single examples that ``check --workers``
    serves through a DataLoader (None: examples drawn with ``make_batch``).
    """

    model: Any
    make_batch: Callable[[Any], Any]
    loss: Callable[[Any, Any], Any] | None = None
    forward: Callable[[Any, Any], Any] | None = None
    save: Callable[[str, Any, Any], None] | None = None
    load: Callable[[str, Any, Any], None] | None = None
    dataset: Any = None
