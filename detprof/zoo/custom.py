"""Your own model wherever a zoo arch is accepted: ``--model MODULE:FUNCTION``.

MODULE is an importable module (``mypackage.models``) or a path to a ``.py`` file
(``models/net.py``); FUNCTION is called with ``num_classes`` and returns an ``nn.Module``. This
runs your code: in the command's process, once, to check the reference before anything is
measured (the model is built on PyTorch's meta device there when it can be, so nothing is
allocated), and in every job that trains it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detprof.errors import DetprofError

if TYPE_CHECKING:
    from torch import nn


class UserModelError(DetprofError, ValueError):
    """A --model reference that does not lead to a function returning an nn.Module."""


def _module(name: str) -> Any:
    path = Path(name)
    if name.endswith(".py"):
        if not path.is_file():
            raise UserModelError(f"--model {name!r}: no such file; give MODULE:FUNCTION with an importable module or "
                                 "a path to a .py file")
        module_name = f"detprof_user_model_{abs(hash(str(path.resolve())))}"
        if module_name in sys.modules:
            return sys.modules[module_name]
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise UserModelError(f"--model {name!r} cannot be loaded as a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[module_name]
            raise UserModelError(f"--model {name!r} failed while being imported: {type(error).__name__}: "
                                 f"{error}") from None
        return module
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise UserModelError(f"--model: module {name!r} cannot be imported ({error}); give MODULE:FUNCTION with "
                             "an importable module or a path to a .py file") from None


def model_factory(reference: str) -> Callable[..., Any]:
    """The function a ``MODULE:FUNCTION`` reference names; raises UserModelError in one line."""
    module_name, colon, function_name = reference.rpartition(":")
    if not colon or not module_name or not function_name:
        raise UserModelError(f"--model {reference!r} is not accepted; use MODULE:FUNCTION, e.g. "
                             "models/net.py:build or mypackage.models:resnet")
    function = getattr(_module(module_name), function_name, None)
    if not callable(function):
        raise UserModelError(f"--model {reference!r}: {module_name} has no function {function_name!r}")
    return function


def build_user_model(reference: str, num_classes: int) -> nn.Module:
    """Call the referenced function with ``num_classes``; raises UserModelError unless it returns an
    nn.Module."""
    from torch import nn

    model = model_factory(reference)(num_classes)
    if not isinstance(model, nn.Module):
        raise UserModelError(f"--model {reference!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def check_user_model(reference: str, num_classes: int) -> None:
    """Import and call the referenced function once, on the meta device when it allows (nothing is
    allocated), and raise UserModelError in one line for anything that is not a working reference."""
    import torch

    factory = model_factory(reference)
    try:
        with torch.device("meta"):
            model = factory(num_classes)
    except Exception:  # some constructors touch real tensors: build it for real instead
        try:
            model = factory(num_classes)
        except Exception as error:
            raise UserModelError(f"--model {reference!r} raised {type(error).__name__}: {error}") from None
    if not isinstance(model, torch.nn.Module):
        raise UserModelError(f"--model {reference!r} returned {type(model).__name__}, not a torch.nn.Module")
