"""Fresh processes for measurements: forked from a fork server that has imported the framework
(the modules its first caller names) but never run an op, so no CUDA context, cuDNN/cuBLAS handle
or allocator state exists to inherit, and each job starts without paying ~2 s of imports. A crash,
OOM or kill costs only that process.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detprof.process.host import process_alive

LOG_TAIL_CHARS = 2000
_fork_context: multiprocessing.context.ForkServerContext | None = None


@dataclass(frozen=True)
class ProcessOutcome:
    exitcode: int | None  # negative: killed by that signal; None: timed out
    timed_out: bool
    log_tail: str  # the end of the process's stdout and stderr


def _context(preload: list[str]) -> multiprocessing.context.ForkServerContext:
    """The fork server context; the first caller's ``preload`` (module names) is what the server
    imports before it forks anything, and later callers share that server."""
    global _fork_context
    if _fork_context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(preload)
        _fork_context = context
    return _fork_context


def restart_fork_server() -> None:
    """Stop the fork server; the next job starts a new one (about 1.5 s of imports), whose memory
    layout is drawn afresh. Between pairs only: a job being forked would lose its server."""
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)  # type: ignore[attr-defined]
    if stop is not None:
        stop()


PARENT_POLL_S = 0.5


def die_with(measuring_pid: int) -> None:
    """End this job as soon as the process that asked for it is gone, however it went (kill -9
    included). The fork server cannot be relied on for that: every job it forks holds the
    measuring process's end of the pipe the server watches, so the server outlives it."""

    def watch() -> None:
        while process_alive(measuring_pid):
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="detprof-parent-watch", daemon=True).start()


def die_with_parent_in(argv: list[str]) -> list[str]:
    """For a job started by ``run_in_new_interpreter``: take ``--parent PID`` out of ``argv``, end
    with that process (``die_with``), and return the other arguments."""
    if "--parent" not in argv:
        return argv
    at = argv.index("--parent")
    die_with(int(argv[at + 1]))
    return argv[:at] + argv[at + 2:]


def _child(target: str, args: tuple[Any, ...], environment: dict[str, str], log_path: str,
           measuring_pid: int) -> None:
    """In the new process: end with the measuring process, take the environment before anything
    can start CUDA (so that CUBLAS_WORKSPACE_CONFIG is in place when cuBLAS reads it), send
    stdout/stderr to the log, then call ``module:function`` with ``args`` and exit with what it returns."""
    die_with(measuring_pid)
    os.environ.clear()
    os.environ.update(environment)
    try:
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError:  # the measurement that asked for this job stopped while it started
        os._exit(1)
    os.dup2(log, 1)
    os.dup2(log, 2)
    fresh_global_generators()
    module, _, function = target.partition(":")
    code = getattr(importlib.import_module(module), function)(*args)
    # A result written is a result: end now, without waiting for threads the user's code left
    # running (a Process would join every non-daemon thread before it exits) or for atexit handlers.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0)


def fresh_global_generators() -> None:
    """Reseed Python's ``random`` and numpy's global generator from the operating system, as a new
    interpreter would have them. A forked job inherits the fork server's: without this, every job
    would start from the same numpy state, and code drawing from it unseeded would look
    reproducible when two launches of it are not. torch's default generator needs nothing: a new
    interpreter starts it from a fixed seed too, and detprof seeds it on purpose."""
    import random

    random.seed()
    numpy = sys.modules.get("numpy")  # imported by the fork server's preload; never imported here for this
    if numpy is not None:
        numpy.random.seed()


def run_in_new_interpreter(module: str, args: list[str], environment: dict[str, str], log_path: Path,
                           timeout_s: float | None, pass_fds: tuple[int, ...] = ()) -> ProcessOutcome:
    """Run ``python -m module *args --parent PID`` in a new interpreter (nothing inherited from this
    one: the TensorFlow jobs, which must never share a process with torch); kill it after
    ``timeout_s`` seconds, or when this process is interrupted. The module is expected to call
    ``die_with(PID)`` so that it also ends if this process is killed outright. ``pass_fds``: the
    descriptors the new interpreter inherits (a pipe, a file to write its records to)."""
    import subprocess

    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", module, *args, "--parent", str(os.getpid())],
                                   env=environment, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   pass_fds=pass_fds)
        try:
            process.wait(timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            process.kill()
            process.wait()
        except BaseException:  # Ctrl-C in the measuring process: the job goes with it
            process.kill()
            process.wait()
            raise
    tail = log_path.read_text(errors="replace").strip()[-LOG_TAIL_CHARS:] if log_path.exists() else ""
    return ProcessOutcome(None if timed_out else process.returncode, timed_out, tail)


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start a job without multiprocessing re-running the caller's script in it.

    To rebuild ``__main__`` in a child, multiprocessing runs the main script again there; from a
    plain script without an ``if __name__ == "__main__":`` guard that re-runs the measurement
    itself in every job. detprof's jobs need nothing from ``__main__``, so it is hidden while a
    job starts."""
    main = sys.modules.get("__main__")
    saved = {name: getattr(main, name) for name in ("__file__", "__spec__") if main and hasattr(main, name)}
    try:
        if main is not None:
            main.__spec__ = None  # type: ignore[assignment]
            if hasattr(main, "__file__"):
                del main.__file__
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)


def _fork_server_pid() -> int | None:
    from multiprocessing import forkserver

    return getattr(forkserver._forkserver, "_forkserver_pid", None)  # type: ignore[attr-defined]


def _fork_server_gone() -> bool:
    """True when the fork server this process started has died (a job's code killed it, say)."""
    pid = _fork_server_pid()
    return pid is not None and not process_alive(pid)


SERVER_GONE_POLL_S = 0.2
SERVER_DEATH_S = 5.0  # how long a killed fork server may take to be gone


def run_in_fresh_process(target: str, args: tuple[Any, ...], environment: dict[str, str], log_path: Path,
                         timeout_s: float | None, preload: list[str]) -> ProcessOutcome:
    """Run ``module:function(*args)`` in a fresh process; kill it after ``timeout_s`` seconds.

    ``preload`` names the modules the fork server imports first, when this call starts it (each
    caller names its own: the backend whose code the process runs knows what it imports). A fork
    server that a job's code killed is started again for the next job; the job that killed it is
    still waited for (by its pid) and its result read, as any other's."""
    started_at = time.monotonic()

    def start() -> Any:
        process = _context(preload).Process(target=_child, name=f"detprof:{target}",
                                            args=(target, args, environment, str(log_path), os.getpid()))
        with _main_module_hidden():
            process.start()
        return process

    process = None
    try:
        try:
            process = start()
        except (EOFError, ConnectionError, OSError):
            deadline = time.monotonic() + SERVER_DEATH_S
            while not _fork_server_gone() and time.monotonic() < deadline:
                time.sleep(SERVER_GONE_POLL_S)  # a server killed a moment ago may not be gone yet
            if not _fork_server_gone():
                raise
            restart_fork_server()  # the last job's code killed it: one fresh server, one more try
            process = start()
        process.join(timeout_s)
        if process.exitcode == 255 and process.pid is not None and process_alive(process.pid):
            # 255 is what a fork server that died under a still-running job reports: wait for the job itself.
            while process_alive(process.pid) and (timeout_s is None or time.monotonic() - started_at < timeout_s):
                time.sleep(SERVER_GONE_POLL_S)
            if process_alive(process.pid):
                os.kill(process.pid, 9)
                return _outcome(None, True, log_path)
    except BaseException:  # Ctrl-C in the measuring process: the job goes with it, not on its own
        if process is not None and process.pid is not None:
            process.kill()
            process.join()
        raise
    timed_out = process.is_alive()
    if timed_out:
        process.kill()
        process.join()
    return _outcome(None if timed_out else process.exitcode, timed_out, log_path)


def _outcome(exitcode: int | None, timed_out: bool, log_path: Path) -> ProcessOutcome:
    tail = log_path.read_text(errors="replace").strip()[-LOG_TAIL_CHARS:] if log_path.exists() else ""
    return ProcessOutcome(exitcode, timed_out, tail)
