"""Your own image classifier wherever a zoo arch is accepted: ``--model MODULE:FUNCTION``.

FUNCTION is called with ``num_classes`` and returns an ``nn.Module`` that takes images. This runs
your code, never in detprof's own process (detprof.usercode): once in a child process, to check
the reference before anything is measured (the model is built on PyTorch's meta device there when
it can be, so nothing is allocated), and in every job that trains it. For any other network, with
your own batches and loss, use ``--workload`` (detprof.workload.user).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detprof.usercode import UserCodeError, parse_reference, probe_in_child, referenced_function, write_probe_result

if TYPE_CHECKING:
    from torch import nn

OPTION = "--model"


class UserModelError(UserCodeError):
    """A --model reference that does not lead to a function returning an nn.Module."""


def build_user_model(reference: str, num_classes: int) -> nn.Module:
    """Call the referenced function with ``num_classes``; raises UserModelError unless it returns an
    nn.Module."""
    from torch import nn

    model = referenced_function(reference, OPTION, UserModelError)(num_classes)
    if not isinstance(model, nn.Module):
        raise UserModelError(f"--model {reference!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def check_user_model(reference: str, num_classes: int, preload: list[str]) -> None:
    """Check a --model reference in a child process (``probe_to_file``): import the module, call
    the function on the meta device when it allows, and require an nn.Module. Every other ending,
    including the code exiting, crashing or hanging, raises UserModelError in one line."""
    parse_reference(reference, OPTION, UserModelError)
    probe_in_child("detprof.backends.torch.zoo.custom:probe_to_file", (reference, num_classes), OPTION, reference,
                   preload, UserModelError)


def probe_to_file(reference: str, num_classes: int, out_path: str) -> int:
    """In the child process: check the reference and write the verdict to ``out_path``."""
    return write_probe_result(out_path, OPTION, reference, lambda: _probe(reference, num_classes))


def _probe(reference: str, num_classes: int) -> dict[str, Any]:
    """Import and call the referenced function once, on the meta device when it allows (nothing is
    allocated), and raise UserModelError in one line for anything that is not a working reference."""
    import torch

    factory = referenced_function(reference, OPTION, UserModelError)
    try:
        with torch.device("meta"):
            model = factory(num_classes)
    except Exception:  # some constructors touch real tensors: build it for real instead
        try:
            model = factory(num_classes)
        except UserModelError:
            raise
        except Exception as error:
            raise UserModelError(f"--model {reference!r} raised {type(error).__name__}: {error}") from None
    if not isinstance(model, torch.nn.Module):
        raise UserModelError(f"--model {reference!r} returned {type(model).__name__}, not a torch.nn.Module")
    return {}
