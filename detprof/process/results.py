"""Reading back what a child process wrote: a check side's JSON result document, a script's records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from detprof.errors import DetprofError
from detprof.process.child import ChildResult, Ending
from detprof.shapes import require_shape


class CheckError(DetprofError):
    """A check run that could not finish (its process failed, timed out or wrote no result)."""


def side_result(ended: ChildResult, timeout_s: float) -> dict[str, Any]:
    """The result document a check run wrote; CheckError when it timed out, wrote none, or wrote an
    error instead (detprof.process.child says how it ended)."""
    if ended.ending is Ending.TIMEOUT:
        raise CheckError(f"a check run exceeded {timeout_s:g} s and was killed")
    if ended.ending in (Ending.KILLED, Ending.CRASHED):
        raise CheckError(f"a check run ended without a result ({ended.how})"
                         + (f"; its last output: {last_line(ended.log_tail)}" if ended.log_tail.strip() else ""))
    if ended.document is None:
        raise CheckError(f"a check run's result could not be used: {ended.how}")
    if ended.error is not None:
        raise CheckError(f"a check run failed: {ended.error}")
    return ended.document


def last_line(log: str, limit: int = 200) -> str:
    """The last non-empty line of a process's output, cut to ``limit`` characters: what a one-line
    error can quote of it."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_records(path: Path, secret: str | None = None,
                 kind: type | None = None) -> tuple[list[dict[str, Any]], int]:
    """The JSON lines a watched run wrote (a line cut off by a kill is left out), and how many lines
    did not carry its ``secret`` (``watch``): written by something other than detprof's watch.
    With ``kind`` (a TypedDict), a line that is not one raises ShapeError naming its field: the
    watch itself wrote it wrong."""
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
        if kind is not None:
            require_shape(record, kind, f"a record in {str(path)!r}")
        records.append(record)
    return records, forged
