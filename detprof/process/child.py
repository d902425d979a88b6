"""The one way detprof runs a piece of work in a child process and reads what it left.

A ``Child`` names what runs (``module:function`` forked from a fork server that imported the
caller's ``preload``, or ``python -m module`` in a new interpreter), its arguments, environment
and time limit; the child is given the path of its result file as its last argument and writes
one JSON document there, whole (detprof.documents.write_json_whole). ``run_child`` starts it,
enforces the limit and the parent's death (detprof.process.processes), and returns a
``ChildResult`` whose ``ending`` says how it ended, from the exit status and the document's own
fields, never from the text of a message or a log:

- ``ok``: a document without ``error``;
- ``failed``: a document with ``error`` (the child caught what went wrong and said so);
- ``out-of-memory``: a document whose ``status`` is ``oom`` (the child recognised the framework's
  out-of-memory error by its type);
- ``timeout``: killed at the limit;
- ``killed``: ended by a signal without a document (a kill, the OOM killer, a crash in C);
- ``crashed``: exited without a document (``sys.exit``, ``os._exit``);
- ``unreadable``: a document that is not JSON, not an object, or not of the kind the caller
  reads (``Child.reads``, a TypedDict: a field it does not have, such as a misspelt key, a required
  one missing, or a value of the wrong type; detprof.shapes).
"""

from __future__ import annotations

import json
import signal
import tempfile
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from detprof.process.processes import ProcessOutcome, run_in_fresh_process, run_in_new_interpreter
from detprof.shapes import shape_problem

RESULT_FILE = "result.json"
LOG_FILE = "run.log"


class Ending(StrEnum):
    """How a child ended (see the module docstring)."""

    OK = "ok"
    FAILED = "failed"
    OUT_OF_MEMORY = "out-of-memory"
    TIMEOUT = "timeout"
    KILLED = "killed"
    CRASHED = "crashed"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Child:
    """What runs in the child: ``target`` (``module:function`` forked, or ``module`` run as
    ``python -m`` with ``interpreter``), its ``args`` (the result file's path is added last),
    its ``environment``, its time limit (None: none), the modules a fork server imports first
    (the caller's framework), the descriptors a new interpreter inherits, and ``reads``: the
    TypedDict its result document must be (None for a child that writes none)."""

    target: str
    args: tuple[Any, ...]
    environment: dict[str, str]
    timeout_s: float | None
    preload: tuple[str, ...] = ()
    interpreter: bool = False
    pass_fds: tuple[int, ...] = ()
    reads: type | None = field(kw_only=True)


@dataclass(frozen=True)
class ChildResult:
    """How a child ended, its exit code (None at the limit), the document it wrote (None when none
    was readable), the end of its output, and ``how`` in words for a message: "exit code 1",
    "killed by signal 9 (SIGKILL)", "exceeded 30 s and was killed"."""

    ending: Ending
    exitcode: int | None
    document: dict[str, Any] | None
    log_tail: str
    how: str

    @property
    def error(self) -> str | None:
        """The error the child's document names, if it names one."""
        return None if self.document is None or "error" not in self.document else str(self.document["error"])


def run_child(child: Child, folder: Path | None = None) -> ChildResult:
    """Run ``child`` with its result file and log in ``folder`` (a temporary one when None, gone
    afterwards) and read how it ended."""
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="detprof-child-") as scratch:
            return run_child(child, Path(scratch))
    result, log = folder / RESULT_FILE, folder / LOG_FILE
    if child.interpreter:
        outcome = run_in_new_interpreter(child.target, [*map(str, child.args), str(result)], child.environment, log,
                                         child.timeout_s, pass_fds=child.pass_fds)
    else:
        outcome = run_in_fresh_process(child.target, (*child.args, str(result)), child.environment, log,
                                       child.timeout_s, list(child.preload))
    return read_child_result(outcome, result, child.timeout_s, child.reads)


def signal_name(number: int) -> str:
    """A signal's name (SIGKILL), or "signal N" for a number without one."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def how_it_ended(code: int | None) -> str:
    """A process's exit status in words: "killed by signal 9 (SIGKILL)", or "exit code 1"."""
    return f"killed by signal {-code} ({signal_name(-code)})" if code is not None and code < 0 else f"exit code {code}"


def read_child_result(outcome: ProcessOutcome, result: Path, timeout_s: float | None,
                      reads: type | None = None) -> ChildResult:
    """How a child whose process ended as ``outcome`` ended, with the document it left at ``result``
    (which must be a ``reads``, a TypedDict, when one is named)."""
    code = outcome.exitcode
    if outcome.timed_out:
        return ChildResult(Ending.TIMEOUT, None, None, outcome.log_tail,
                           f"exceeded {timeout_s or 0:g} s and was killed")
    how = how_it_ended(code)
    if not result.exists():
        ending = Ending.KILLED if code is not None and code < 0 else Ending.CRASHED
        return ChildResult(ending, code, None, outcome.log_tail, how)
    try:
        document = json.loads(result.read_text())
    except (OSError, ValueError) as error:
        return ChildResult(Ending.UNREADABLE, code, None, outcome.log_tail, f"its result could not be read ({error})")
    if not isinstance(document, dict):
        return ChildResult(Ending.UNREADABLE, code, None, outcome.log_tail, "its result file holds no result document")
    problem = shape_problem(document, reads) if reads is not None else None
    if problem is not None:  # a misspelt field would read as absent: a result that says less than it seems
        return ChildResult(Ending.UNREADABLE, code, None, outcome.log_tail,
                           f"its result is not a {getattr(reads, '__name__', reads)}: {problem}")
    ending = (Ending.OUT_OF_MEMORY if document.get("status") == "oom" else
              Ending.FAILED if "error" in document else Ending.OK)
    return ChildResult(ending, code, document, outcome.log_tail, how)
