"""Reading back what a child process wrote: a check side's JSON result document, a script's records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detprof.errors import DetprofError

if TYPE_CHECKING:
    from detprof.process.processes import ProcessOutcome


class CheckError(DetprofError):
    """A check run that could not finish (its process failed, timed out or wrote no result)."""


def side_result(outcome: ProcessOutcome, out: Path, timeout_s: float) -> dict[str, Any]:
    """The result document a check run wrote to ``out``; CheckError when it timed out, wrote none, or
    wrote an error instead."""
    if outcome.timed_out:
        raise CheckError(f"a check run exceeded {timeout_s:g} s and was killed")
    if not out.exists():
        raise CheckError(f"a check run ended without a result ({_how_it_ended(outcome.exitcode)})"
                         + (f"; its last output: {last_line(outcome.log_tail)}" if outcome.log_tail.strip() else ""))
    try:
        document = json.loads(out.read_text())
    except (OSError, ValueError) as error:
        raise CheckError(f"a check run's result could not be read ({error}); is the disk full?") from None
    if not isinstance(document, dict):
        raise CheckError("a check run's result file holds no result document")
    if "error" in document:
        raise CheckError(f"a check run failed: {document['error']}")
    return document


def last_line(log: str, limit: int = 200) -> str:
    """The last non-empty line of a process's output, cut to ``limit`` characters: what a one-line
    error can quote of it."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        import signal

        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit {exitcode}"


def read_records(path: Path, secret: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """The JSON lines a watched run wrote (a line cut off by a kill is left out), and how many lines
    did not carry its ``secret`` (``watch``): written by something other than detprof's watch."""
    if not path.exists():
        return [], 0
    records, forged = [], 0
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or (secret is not None and record.pop("watch", None) != secret):
            forged += 1
            continue
        records.append(record)
    return records, forged
