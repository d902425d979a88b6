"""Golden records: a record committed beside a test or a CI job, which every new record of the
same workload must equal bit for bit; refreshed only when asked (``--refresh``, pytest's
``--detprof-refresh``). Shared by ``detprof record --golden`` and the pytest plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detprof.records.compare import compare_records
from detprof.records.format import Record, RecordError, read_record, write_record


def require_golden(path: str | Path, refresh: bool, refresh_option: str = "--refresh") -> Record | None:
    """The golden record at ``path``, read and checked before anything is measured; None when it is
    missing and ``refresh`` will write it. RecordError in one line when it is missing without
    ``refresh`` (naming ``refresh_option``), damaged, or of a newer format."""
    golden = Path(path)
    if not golden.exists():
        if refresh:
            return None
        raise RecordError(f"golden record {str(path)!r} does not exist; run with {refresh_option} to write it from "
                          "this run")
    return read_record(golden, label=str(path))


def against_golden(record: Record, path: str | Path, refresh: bool, golden: Record | None = None,
                   label: str | None = None) -> dict[str, Any]:
    """Compare ``record`` with the golden record at ``path``, or with ``refresh`` write it there.
    Returns {file, action: compared, written or refreshed, comparison: the comparison document
    (compared only)}; ``golden`` is the record require_golden read, when it was read already, and
    ``label`` how the comparison names it (default: ``path``)."""
    target = Path(path)
    if refresh:
        existed = target.exists()
        write_record(record, target)
        return {"file": str(path), "action": "refreshed" if existed else "written", "comparison": None}
    golden = golden or read_record(target, label=str(path))
    return {"file": str(path), "action": "compared",
            "comparison": compare_records(golden, record, (f"golden {label or path}", "this run"))}
