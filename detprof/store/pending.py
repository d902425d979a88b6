"""Runs kept as files beside a store that was locked or full, until the next writer stores them;
and the reading of a stored JSON document column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from detprof.store.errors import DamagedRowError

PENDING_DIR = "pending"  # results measured while the database was locked, stored by the next writer

PENDING_KEYS = {"run": dict, "jobs": list, "kernels": dict}
RUN_KEYS = ("created_at", "kind", "arch", "framework", "device_kind", "device_name", "modes", "command", "config",
            "environment", "summary")


def pending_document(path: Path) -> dict[str, Any]:
    """A pending run file's document; DamagedRowError when it is not one that detprof wrote."""
    document = decode_document(path.read_text(errors="replace"), f"the pending file {str(path)!r}")
    for key, kind in PENDING_KEYS.items():
        if not isinstance(document.get(key), kind):
            raise DamagedRowError(f"the pending file {str(path)!r} has no {key} {kind.__name__}")
    missing = [key for key in RUN_KEYS if key not in document["run"]]
    if missing or not all(isinstance(rows, list) for rows in document["kernels"].values()):
        raise DamagedRowError(f"the pending file {str(path)!r} is not a run detprof kept "
                              f"({'no ' + missing[0] if missing else 'kernel rows that are not a list'})")
    return document


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
