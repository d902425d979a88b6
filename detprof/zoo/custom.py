"""Your own model wherever a zoo arch is accepted: ``--model MODULE:FUNCTION``.

MODULE is an importable module (``mypackage.models``) or a path to a ``.py`` file
(``models/net.py``); FUNCTION is called with ``num_classes`` and returns an ``nn.Module``. This
runs your code, never in detprof's own process: once in a child process, to check the reference
before anything is measured (the model is built on PyTorch's meta device there when it can be,
so nothing is allocated), and in every job that trains it. Whatever the code does there (exit 0,
``os._exit``, a segfault, a hang, printing to stdout) becomes one line and exit 2, so it cannot
end detprof with a verdict of its own.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detprof.errors import DetprofError

if TYPE_CHECKING:
    from torch import nn


class UserModelError(DetprofError, ValueError):
    """A --model reference that does not lead to a function returning an nn.Module."""


def _module(name: str) -> Any:
    """The module a reference names (``parse_reference`` has checked that a .py file exists)."""
    path = Path(name)
    if name.endswith(".py"):
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
    """The function a ``MODULE:FUNCTION`` reference names (importing its module: this runs the
    user's code); raises UserModelError in one line."""
    module_name, function_name = parse_reference(reference)
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


def parse_reference(reference: str) -> tuple[str, str]:
    """(module, function) of a ``MODULE:FUNCTION`` reference, checked without running anything:
    the form, and that a ``.py`` file exists; raises UserModelError in one line."""
    module_name, colon, function_name = reference.rpartition(":")
    if not colon or not module_name or not function_name:
        raise UserModelError(f"--model {reference!r} is not accepted; use MODULE:FUNCTION, e.g. "
                             "models/net.py:build or mypackage.models:resnet")
    if module_name.endswith(".py") and not Path(module_name).is_file():
        raise UserModelError(f"--model {module_name!r}: no such file; give MODULE:FUNCTION with an importable module "
                             "or a path to a .py file")
    return module_name, function_name


PROBE_TIMEOUT_ENV_VAR = "DETPROF_MODEL_PROBE_TIMEOUT"
DEFAULT_PROBE_TIMEOUT_S = 120.0  # importing a user's module and building its model, on the meta device
_probed: set[tuple[str, int, str]] = set()  # references that passed, with their folder: probed once a process


def probe_timeout_s() -> float:
    """Seconds the check of a --model may take ($DETPROF_MODEL_PROBE_TIMEOUT, default 120)."""
    from detprof.settings import seconds_from_env

    return seconds_from_env(PROBE_TIMEOUT_ENV_VAR, DEFAULT_PROBE_TIMEOUT_S, UserModelError)


def check_user_model(reference: str, num_classes: int) -> None:
    """Check a --model reference by running it in a child process (see ``probe_to_file``): import the
    module, call the function on the meta device when it allows, and require an nn.Module. Every
    other ending, including the code exiting, crashing or hanging, raises UserModelError in one line."""
    from detprof.runner.processes import run_in_fresh_process

    parse_reference(reference)
    key = (reference, num_classes, os.getcwd())
    if key in _probed:
        return
    timeout_s = probe_timeout_s()
    with tempfile.TemporaryDirectory(prefix="detprof-model-probe-") as scratch:
        out = Path(scratch, "probe.json")
        outcome = run_in_fresh_process("detprof.zoo.custom:probe_to_file", (reference, num_classes, str(out)),
                                       dict(os.environ), Path(scratch, "probe.log"), timeout_s)
        result = json.loads(out.read_text()) if out.exists() else None
    if outcome.timed_out:
        raise UserModelError(f"--model {reference!r} did not finish importing and building its model within "
                             f"{timeout_s:g} s (${PROBE_TIMEOUT_ENV_VAR} sets the limit)")
    if result is None:
        how = (f"was killed by signal {-outcome.exitcode}" if outcome.exitcode is not None and outcome.exitcode < 0
               else f"ended the process with exit code {outcome.exitcode}")
        last = outcome.log_tail.strip().splitlines()[-1:] if outcome.log_tail.strip() else []
        raise UserModelError(f"--model {reference!r} {how} while being imported or built, before returning a model"
                             + (f"; its last output: {last[0][:200]}" if last else ""))
    if "error" in result:
        raise UserModelError(result["error"])
    _probed.add(key)


def probe_to_file(reference: str, num_classes: int, out_path: str) -> int:
    """In the child process: run the reference's checks and write ``{"ok": true}`` or
    ``{"error": "..."}`` to ``out_path``; returns the exit code (0 either way: the file says)."""
    try:
        _probe(reference, num_classes)
        document: dict[str, Any] = {"ok": True}
    except UserModelError as error:
        document = {"error": str(error)}
    except SystemExit as stop:
        document = {"error": f"--model {reference!r} called sys.exit({stop.code!r}) while being imported or built"}
    except BaseException as error:  # anything else the user's code raised on the way
        document = {"error": f"--model {reference!r} raised {type(error).__name__}: {error}"}
    partial = Path(out_path + ".partial")
    partial.write_text(json.dumps(document))
    partial.replace(out_path)
    return 0


def _probe(reference: str, num_classes: int) -> None:
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
        except UserModelError:
            raise
        except Exception as error:
            raise UserModelError(f"--model {reference!r} raised {type(error).__name__}: {error}") from None
    if not isinstance(model, torch.nn.Module):
        raise UserModelError(f"--model {reference!r} returned {type(model).__name__}, not a torch.nn.Module")
