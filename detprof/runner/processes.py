"""Fresh processes for measurements: forked from a fork server that has imported torch but never
run an op, so no CUDA context, cuDNN/cuBLAS handle or allocator state exists to inherit, and each
job starts without paying ~2 s of imports. A crash, OOM or kill costs only that process.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Imported once by the fork server. torch._dynamo is imported by every optimizer's constructor
# anyway; preloading it moves that second off every job.
FORK_SERVER_PRELOAD = ["detprof.runner.worker", "torch._dynamo"]
LOG_TAIL_CHARS = 2000
_fork_context: multiprocessing.context.ForkServerContext | None = None


@dataclass(frozen=True)
class ProcessOutcome:
    exitcode: int | None  # negative: killed by that signal; None: timed out
    timed_out: bool
    log_tail: str  # the end of the process's stdout and stderr


def _context(preload: list[str] | None = None) -> multiprocessing.context.ForkServerContext:
    """The fork server context; the first caller's ``preload`` (module names) is what the server
    imports before it forks anything, and later callers share that server."""
    global _fork_context
    if _fork_context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(preload or FORK_SERVER_PRELOAD)
        _fork_context = context
    return _fork_context


def _child(target: str, args: tuple[Any, ...], environment: dict[str, str], log_path: str) -> None:
    """In the new process: take the environment before anything can start CUDA (so that
    CUBLAS_WORKSPACE_CONFIG is in place when cuBLAS reads it), send stdout/stderr to the log,
    then call ``module:function`` with ``args`` and exit with what it returns."""
    os.environ.clear()
    os.environ.update(environment)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    module, _, function = target.partition(":")
    sys.exit(getattr(importlib.import_module(module), function)(*args))


def run_in_fresh_process(target: str, args: tuple[Any, ...], environment: dict[str, str], log_path: Path,
                         timeout_s: float | None, preload: list[str] | None = None) -> ProcessOutcome:
    """Run ``module:function(*args)`` in a fresh process; kill it after ``timeout_s`` seconds.

    ``preload`` names the modules the fork server imports first, when this call starts it."""
    process = _context(preload).Process(target=_child, args=(target, args, environment, str(log_path)),
                                 name=f"detprof:{target}")
    process.start()
    process.join(timeout_s)
    timed_out = process.is_alive()
    if timed_out:
        process.kill()
        process.join()
    tail = log_path.read_text(errors="replace").strip()[-LOG_TAIL_CHARS:] if log_path.exists() else ""
    return ProcessOutcome(None if timed_out else process.exitcode, timed_out, tail)
