"""A user's ``--workload MODULE:FUNCTION`` inside a job or probe process: call it, accept one of
its documented return forms (detprof.workload.user), and check its batch and loss.

``probe_to_file`` is what the parent runs once, in a child process, before anything is measured:
one forward pass and the loss on the meta device when the model allows (nothing is allocated and
no kernel runs), else on a batch of at most two examples on the CPU. Imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from detprof.usercode import one_line, referenced_function, write_probe_result
from detprof.workload.user import ACCEPTED_RETURNS, OPTION, UserWorkload, UserWorkloadError

PROBE_BATCH_LIMIT = 2  # examples in the real forward pass of the check, when the meta device is refused


def load_user_workload(reference: str, batch_size: int, device: torch.device) -> UserWorkload:
    """Call ``FUNCTION(batch_size, device)`` and return its workload in the typed form; raises
    UserWorkloadError in one line for a return value of any other form."""
    function = referenced_function(reference, OPTION, UserWorkloadError)
    returned = function(batch_size, device)
    if isinstance(returned, UserWorkload):
        workload = returned
    elif isinstance(returned, tuple) and len(returned) in (2, 3):
        workload = UserWorkload(*returned)
    else:
        raise UserWorkloadError(f"{OPTION} {reference!r} returned {_described_value(returned)}; return "
                                f"{ACCEPTED_RETURNS}")
    if not isinstance(workload.model, torch.nn.Module):
        raise UserWorkloadError(f"{OPTION} {reference!r}: the model is {type(workload.model).__name__}, not a "
                                "torch.nn.Module")
    for name in ("make_batch", "loss", "forward", "save", "load"):
        value = getattr(workload, name)
        if value is not None and not callable(value):
            raise UserWorkloadError(f"{OPTION} {reference!r}: {name} is {type(value).__name__}, not a function")
    if (workload.save is None) != (workload.load is None):
        raise UserWorkloadError(f"{OPTION} {reference!r}: give both save and load, or neither (then detprof's own "
                                "checkpoint is used)")
    if not callable(workload.make_batch):
        raise UserWorkloadError(f"{OPTION} {reference!r}: make_batch is missing; give a function of a "
                                "torch.Generator that returns one batch")
    return workload


def _described_value(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return "None" if value is None else f"a {type(value).__name__}"


def draw_batch(workload: UserWorkload, reference: str, generator: torch.Generator) -> Any:
    """One batch from the workload's ``make_batch``, checked: a tensor, a tuple or list of tensors,
    or a dict of tensors (nested alike); raises UserWorkloadError in one line otherwise."""
    batch = workload.make_batch(generator)
    if not _is_batch(batch):
        raise UserWorkloadError(f"{OPTION} {reference!r}: make_batch returned {_described_value(batch)}; return "
                                "a tensor, a tuple of tensors or a dict of tensors")
    return batch


def _is_batch(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, Mapping):
        return bool(value) and all(isinstance(key, str) and _is_batch(item) for key, item in value.items())
    if isinstance(value, tuple | list):
        return bool(value) and all(_is_batch(item) for item in value)
    return False


def describe_batch(batch: Any) -> str:
    """A batch for people: ``dict input_ids int64 4x128, labels int64 4x128``."""
    if isinstance(batch, torch.Tensor):
        return f"{str(batch.dtype).removeprefix('torch.')} {'x'.join(map(str, batch.shape)) or 'scalar'}"
    if isinstance(batch, Mapping):
        return "dict " + ", ".join(f"{key} {describe_batch(item)}" for key, item in batch.items())
    return f"{type(batch).__name__} of " + ", ".join(describe_batch(item) for item in batch)


def spread_call(model: torch.nn.Module, batch: Any) -> Any:
    """The model called with the batch spread out: a dict as keyword arguments, a tuple or list as
    positional ones, a tensor as the one argument."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, tuple | list):
        return model(*batch)
    return model(batch)


def own_loss(output: Any, reference: str) -> Any:
    """The loss a model returned itself: ``output["loss"]`` or ``output.loss`` (Hugging Face's
    outputs are both); raises UserWorkloadError when there is none."""
    loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
    if loss is None:
        raise UserWorkloadError(f"{OPTION} {reference!r}: the model's output ({type(output).__name__}) holds no "
                                "loss and the workload gives no loss_fn; return (model, make_batch, loss_fn), or a "
                                "batch that makes the model compute its loss (e.g. with labels)")
    return loss


def checked_loss(loss: Any, reference: str) -> torch.Tensor:
    """``loss`` if it is a floating scalar tensor that autograd can differentiate; raises
    UserWorkloadError in one line otherwise."""
    if not isinstance(loss, torch.Tensor):
        raise UserWorkloadError(f"{OPTION} {reference!r}: the loss is {_described_value(loss)}, not a tensor")
    if loss.numel() != 1 or not loss.is_floating_point():
        raise UserWorkloadError(f"{OPTION} {reference!r}: the loss is a {str(loss.dtype).removeprefix('torch.')} "
                                f"tensor of shape {tuple(loss.shape)}; return a floating-point scalar (e.g. a mean)")
    if not loss.requires_grad:
        raise UserWorkloadError(f"{OPTION} {reference!r}: the loss does not depend on any trainable parameter "
                                "(it has no gradient)")
    return loss


def _forward_and_loss(workload: UserWorkload, batch: Any, reference: str) -> torch.Tensor:
    forward: Callable[[Any, Any], Any] = workload.forward or spread_call
    try:
        output = forward(workload.model, batch)
    except UserWorkloadError:
        raise
    except Exception as error:
        raise UserWorkloadError(f"{OPTION} {reference!r}: the model rejected its batch ({describe_batch(batch)}): "
                                f"{type(error).__name__}: {one_line(error)}") from None
    try:
        loss = workload.loss(output, batch) if workload.loss else own_loss(output, reference)
    except UserWorkloadError:
        raise
    except Exception as error:
        raise UserWorkloadError(f"{OPTION} {reference!r}: the loss failed on the model's output: "
                                f"{type(error).__name__}: {one_line(error)}") from None
    return checked_loss(loss, reference)


def moved_to_device(value: Any, device: torch.device | str) -> Any:
    """``value`` (a tensor, or a mapping, tuple or list of them, nested alike; anything else as it
    is) on ``device``. A mapping comes back as a dict, so that a Hugging Face ``BatchEncoding`` is
    moved too."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return {key: moved_to_device(item, device) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(moved_to_device(item, device) for item in value)
    return value


def example_count(batch: Any) -> int:
    """Examples in a batch of any form: the first dimension of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, Mapping):
        return example_count(next(iter(batch.values())))
    return example_count(batch[0])


def _has_text(value: Any) -> bool:
    if isinstance(value, str | bytes):
        return True
    if isinstance(value, Mapping):
        return any(_has_text(item) for item in value.values())
    if isinstance(value, tuple | list):
        return any(_has_text(item) for item in value)
    return False


def _check_data(workload: UserWorkload, batch: Any, reference: str) -> None:
    """Refuse, before any measurement, data a training could not run on: a batch of 0 examples, and
    a dataset that is empty or whose examples hold text (the loader batches tensors and numbers)."""
    try:
        examples = example_count(batch)
    except (IndexError, KeyError, StopIteration, TypeError):
        examples = None
    if examples == 0:
        raise UserWorkloadError(f"{OPTION} {reference!r}: make_batch returned a batch of 0 examples; return at "
                                "least one")
    dataset = workload.dataset
    if dataset is None:
        return
    if len(dataset) == 0:
        raise UserWorkloadError(f"{OPTION} {reference!r}: its dataset is empty; give one with at least a batch of "
                                "examples")
    try:
        first = dataset[0]
    except Exception:  # noqa: BLE001 - built on the meta device, say: the training itself reads it for real
        return
    if _has_text(first):
        raise UserWorkloadError(f"{OPTION} {reference!r}: its dataset's examples hold text; return tensors or numbers "
                                "(tokenize in the dataset)")


def _probe(reference: str, batch_size: int, device_type: str) -> dict[str, Any]:
    """Build the workload and run one forward pass and its loss, on the meta device when the model
    allows, else for real on the CPU with at most PROBE_BATCH_LIMIT examples."""
    torch.manual_seed(0)
    try:
        with torch.device("meta"):
            workload = load_user_workload(reference, batch_size, torch.device("meta"))
        batch = draw_batch(workload, reference, torch.Generator().manual_seed(1))
        loss = _forward_and_loss(workload, moved_to_device(batch, "meta"), reference)
        where = "meta"
    except UserWorkloadError as error:
        if "rejected its batch" not in str(error) and "the loss" not in str(error):
            raise  # the form of what it returned does not depend on the device
        workload, batch, loss, where = _real_probe(reference, batch_size, device_type)
    except Exception:  # a constructor or op the meta device cannot run: check it for real instead
        workload, batch, loss, where = _real_probe(reference, batch_size, device_type)
    _check_data(workload, batch, reference)
    parameters = sum(p.numel() for p in workload.model.parameters())
    return {"parameters": int(parameters), "batch": describe_batch(batch), "checked_on": where,
            "loss_shape": list(loss.shape)}


def _real_probe(reference: str, batch_size: int, device_type: str) -> tuple[UserWorkload, Any, torch.Tensor, str]:
    torch.manual_seed(0)
    try:
        workload = load_user_workload(reference, min(batch_size, PROBE_BATCH_LIMIT), torch.device("cpu"))
    except UserWorkloadError:
        raise
    except Exception as error:
        raise UserWorkloadError(f"{OPTION} {reference!r} raised {type(error).__name__} while building its "
                                f"workload: {one_line(error)}") from None
    if any(p.is_meta for p in workload.model.parameters()):
        raise UserWorkloadError(f"{OPTION} {reference!r}: the model's parameters are on the meta device (shapes "
                                "without data); build it with real tensors")
    workload.model.to("cpu").train()
    batch = draw_batch(workload, reference, torch.Generator().manual_seed(1))
    return workload, batch, _forward_and_loss(workload, batch, reference), "cpu"


def probe_to_file(reference: str, batch_size: int, device_type: str, out_path: str) -> int:
    """In the child process: check the workload and write what was seen, or the error, to ``out_path``."""
    return write_probe_result(out_path, OPTION, reference, lambda: _probe(reference, batch_size, device_type),
                              doing="imported, built or run once")
