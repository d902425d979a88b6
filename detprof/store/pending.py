"""Runs kept as files beside a store that was locked or full, until the next writer stores them;
and the reading of a stored JSON document column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict, cast

from detprof.shapes import shape_problem
from detprof.store.errors import DamagedRowError
from detprof.store.schema import JobRecord, RunRecord

PENDING_DIR = "pending"  # results measured while the database was locked, stored by the next writer


class PendingRun(TypedDict):
    """A run kept as a file (``ResultStore.save_run`` or ``replace_run`` while the database was
    locked or full): its records, each mode's kernel rows, the sweep job it completes and the run
    it replaces (None for neither)."""

    run: RunRecord
    jobs: list[JobRecord]
    kernels: dict[str, list[dict[str, Any]]]
    sweep_job: str | None
    replaces: int | None


def pending_document(path: Path) -> PendingRun:
    """A pending run file's document; DamagedRowError, naming the field, when it is not a
    PendingRun (not one that detprof wrote)."""
    document = decode_document(path.read_text(errors="replace"), f"the pending file {str(path)!r}")
    problem = shape_problem(document, PendingRun)
    if problem is not None:
        raise DamagedRowError(f"the pending file {str(path)!r} is not a run detprof kept: {problem}")
    return cast(PendingRun, document)


def decode_document(text: Any, what: str) -> dict[str, Any]:
    """A stored JSON object column (``what`` names it, e.g. "run 3's summary_json"); raises
    DamagedRowError when it is not a JSON object."""
    try:
        document = json.loads(text)
    except (TypeError, ValueError) as error:
        raise DamagedRowError(f"{what} is not JSON ({str(error)[:80]}): {str(text)[:40]!r}") from None
    if not isinstance(document, dict):
        raise DamagedRowError(f"{what} is a JSON {type(document).__name__}, not the object detprof stores")
    return document
