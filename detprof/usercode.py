"""A user's code named by ``MODULE:FUNCTION`` (``--model``, ``--workload``): finding it, and
checking it in a child process before anything is measured.

MODULE is an importable module (``mypackage.models``) or a path to a ``.py`` file
(``models/net.py``). Importing it runs the user's code, so the parent never does: it only checks
the reference's form here, and a child process (``probe_in_child``) imports the module, calls the
function and reports back in a file. Whatever the code does there (exit 0, ``os._exit``, a
segfault, a hang, printing to stdout) becomes one line and exit 2, so it cannot end detprof with a
verdict of its own.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from detprof.errors import DetprofError

PROBE_TIMEOUT_ENV_VAR = "DETPROF_MODEL_PROBE_TIMEOUT"
DEFAULT_PROBE_TIMEOUT_S = 120.0  # importing a user's module, building its model and one forward pass


class UserCodeError(DetprofError, ValueError):
    """A MODULE:FUNCTION reference that does not lead to working code of the expected form."""


def parse_reference(reference: str, option: str, error: type[UserCodeError] = UserCodeError) -> tuple[str, str]:
    """(module, function) of a ``MODULE:FUNCTION`` reference given to ``option``, checked without
    running anything: the form, and that a ``.py`` file exists; raises ``error`` in one line."""
    module_name, colon, function_name = reference.rpartition(":")
    if not colon or not module_name or not function_name:
        raise error(f"{option} {reference!r} is not accepted; use MODULE:FUNCTION, e.g. models/net.py:build or "
                    "mypackage.models:build")
    if module_name.endswith(".py") and not Path(module_name).is_file():
        raise error(f"{option} {module_name!r}: no such file; give MODULE:FUNCTION with an importable module or a "
                    "path to a .py file")
    if not module_name.endswith(".py") and not _findable(module_name.partition(".")[0]):
        raise error(f"{option}: module {module_name!r} cannot be imported (no module named "
                    f"{module_name.partition('.')[0]!r} on the path or in the current folder); give MODULE:FUNCTION "
                    "with an importable module or a path to a .py file")
    missing = _undefined_in_source(module_name, function_name)
    if missing is not None:
        raise error(f"{option} {reference!r}: {module_name} has no function {function_name!r} ({missing})")
    return module_name, function_name


# Module-level code that can bind names a reading of the source cannot see.
_DYNAMIC_NAMES = {"globals", "exec", "setattr", "__getattr__", "vars", "locals", "__dict__"}


def _source_of(module_name: str) -> Path | None:
    """The .py file a reference's module would be loaded from, found without running any of it
    (None for a package's submodule, an extension, or a module not found here)."""
    if module_name.endswith(".py"):
        return Path(module_name)
    if "." in module_name:
        return None  # finding a submodule imports its package: the child does that
    from importlib.machinery import PathFinder

    try:
        spec = importlib.util.find_spec(module_name) or PathFinder.find_spec(module_name, [os.getcwd()])
    except (ImportError, ValueError):
        return None
    origin = spec.origin if spec else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _undefined_in_source(module_name: str, name: str) -> str | None:
    """Why ``name`` is surely not defined at the top level of the module's source, read without
    running it; None when it is, or when the source cannot tell (a star import, names bound
    through ``globals()`` or ``exec``, a module whose source is not at hand)."""
    import ast

    path = _source_of(module_name)
    try:
        tree = ast.parse(path.read_bytes()) if path else None
    except (OSError, SyntaxError, ValueError):
        return None  # the child reports a file it cannot import, with Python's own message
    if tree is None:
        return None
    bound: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        statement = pending.pop()
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(statement.name)
            continue
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            for alias in statement.names:
                if alias.name == "*":
                    return None
                bound.add((alias.asname or alias.name).partition(".")[0])
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and (isinstance(node.ctx, ast.Store) or node.id in _DYNAMIC_NAMES):
                if node.id in _DYNAMIC_NAMES:
                    return None
                bound.add(node.id)
            elif isinstance(node, ast.Attribute) and node.attr in _DYNAMIC_NAMES:
                return None
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
    if name in bound or "__getattr__" in bound:  # a module __getattr__ answers any name
        return None
    functions = sorted(n.name for n in tree.body
                       if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and not n.name.startswith("_"))
    shown = ", ".join(functions[:8]) + (", ..." if len(functions) > 8 else "")
    return ("read from its source without running it; its functions: " + shown if functions
            else "read from its source without running it; it defines no function")


def _findable(top_level: str) -> bool:
    """Whether a top-level module could be imported by a child started from here: looked up on
    this process's path and in the current folder (a child interpreter has it first on its path),
    without running any of it."""
    from importlib.machinery import PathFinder

    if not top_level.isidentifier():
        return False
    if top_level in sys.modules or top_level in sys.builtin_module_names:
        return True
    try:
        if importlib.util.find_spec(top_level) is not None:
            return True
    except (ImportError, ValueError):
        return False
    return PathFinder.find_spec(top_level, [os.getcwd()]) is not None


def _module(name: str, option: str, error: type[UserCodeError]) -> Any:
    """The module ``name`` (``parse_reference`` has checked that a .py file exists); imports it."""
    if name.endswith(".py"):
        path = Path(name)
        module_name = f"detprof_user_code_{abs(hash(str(path.resolve())))}"
        if module_name in sys.modules:
            return sys.modules[module_name]
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise error(f"{option} {name!r} cannot be loaded as a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as failure:
            del sys.modules[module_name]
            raise error(f"{option} {name!r} failed while being imported: {type(failure).__name__}: "
                        f"{failure}") from None
        return module
    try:
        return importlib.import_module(name)
    except ImportError as failure:
        raise error(f"{option}: module {name!r} cannot be imported ({failure}); give MODULE:FUNCTION with an "
                    "importable module or a path to a .py file") from None


def referenced_function(reference: str, option: str, error: type[UserCodeError] = UserCodeError) -> Callable[..., Any]:
    """The function a ``MODULE:FUNCTION`` reference names (importing its module: this runs the
    user's code); raises ``error`` in one line."""
    module_name, function_name = parse_reference(reference, option, error)
    function = getattr(_module(module_name, option, error), function_name, None)
    if not callable(function):
        raise error(f"{option} {reference!r}: {module_name} has no function {function_name!r}")
    return function


def probe_timeout_s(error: type[UserCodeError] = UserCodeError) -> float:
    """Seconds the check of a user's reference may take ($DETPROF_MODEL_PROBE_TIMEOUT, default 120)."""
    from detprof.settings import seconds_from_env

    return seconds_from_env(PROBE_TIMEOUT_ENV_VAR, DEFAULT_PROBE_TIMEOUT_S, error)


_probed: set[tuple[str, tuple[Any, ...], str]] = set()  # (entry, arguments, folder) that passed: once a process


def probe_in_child(entry: str, arguments: Sequence[Any], option: str, reference: str, preload: list[str],
                   error: type[UserCodeError] = UserCodeError,
                   doing: str = "importing and building its model") -> dict[str, Any]:
    """Run ``entry`` (``module:function``, called with ``*arguments, out_path``) in a fresh process
    (forked from a fork server that imported ``preload``, the caller's framework)
    and return the document it wrote (see ``write_probe_result``); raises ``error`` in one line
    when it wrote an error, wrote nothing (the code exited, crashed or was killed) or hung
    (``doing`` says what it was doing then)."""
    from detprof.documents import ProbeResult
    from detprof.process.child import Child, Ending, run_child

    key = (entry, tuple(arguments), os.getcwd())
    if key in _probed:
        return {"ok": True}
    timeout_s = probe_timeout_s(error)
    ended = run_child(Child(entry, tuple(arguments), dict(os.environ), timeout_s, tuple(preload), reads=ProbeResult))
    if ended.ending is Ending.TIMEOUT:
        raise error(f"{option} {reference!r} did not finish {doing} within {timeout_s:g} s "
                    f"(${PROBE_TIMEOUT_ENV_VAR} sets the limit)")
    if ended.document is None:
        code = ended.exitcode
        how = (f"was killed by signal {-code}" if code is not None and code < 0
               else f"ended the process with exit code {code}")
        last = ended.log_tail.strip().splitlines()[-1:] if ended.log_tail.strip() else []
        raise error(f"{option} {reference!r} {how} while being imported or built, before it was checked"
                    + (f"; its last output: {last[0][:200]}" if last else ""))
    if ended.error is not None:
        raise error(ended.error)
    _probed.add(key)
    return dict(ended.document)


def write_probe_result(out_path: str, option: str, reference: str, check: Callable[[], dict[str, Any]],
                       doing: str = "imported or built") -> int:
    """In the child process: run ``check`` and write what it returned (with ``ok``) or
    ``{"error": "..."}`` to ``out_path`` (``doing`` says what the code was doing, for an exit);
    returns the exit code (0 either way: the file says)."""
    try:
        document: dict[str, Any] = {"ok": True, **check()}
    except UserCodeError as failure:
        document = {"error": str(failure)}
    except SystemExit as stop:
        document = {"error": f"{option} {reference!r} called sys.exit({stop.code!r}) while being {doing}"}
    except BaseException as failure:  # anything else the user's code raised on the way
        document = {"error": f"{option} {reference!r} raised {type(failure).__name__}: {one_line(failure)}"}
    partial = Path(out_path + ".partial")
    partial.write_text(json.dumps(document))
    partial.replace(out_path)
    return 0


def one_line(failure: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    text = " ".join(str(failure).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
