"""Records in the results store: ``detprof record`` keeps each one as a run (kind record), so that
``runs`` lists it, ``db merge`` carries it and ``db export`` writes it, and ``compare`` reads a
stored one back (``run:ID``) as it reads a file."""

from __future__ import annotations

from detprof.documents import DOCUMENT_VERSION, ComparisonDocument, RecordRunDocument
from detprof.errors import require
from detprof.records.format import Record, RecordError, check_record, read_record
from detprof.store import StoreLike

RUN_PREFIX = "run:"


def record_document(record: Record, file: str | None) -> RecordRunDocument:
    """The document a record is stored (and printed under --json) as: the record whole, with the
    fields every stored run carries (workload, mode, device) and the file it was written to."""
    configuration = record["configuration"]
    return {"document_version": DOCUMENT_VERSION, "workload": record["workload"],
            "framework": record.get("framework", "pytorch"),
            "mode": configuration["mode"],
            "device": {"kind": configuration["device"], "name": configuration["device_name"]},
            "steps": len(record["steps"]), "file": file, "record": dict(record)}


def comparison_document(comparison: ComparisonDocument) -> ComparisonDocument:
    """A comparison with the fields every stored run carries (device, its records' modes)."""
    configurations = [summary["configuration"] for summary in comparison["records"]]
    kinds = sorted({c["device"] for c in configurations})
    names = sorted({str(c["device_name"]) for c in configurations})
    return {**comparison, "device": {"kind": "cuda" if "cuda" in kinds else "cpu", "name": " vs ".join(names)},
            "modes": sorted({str(c["mode"]) for c in configurations})}


def load_record(operand: str, db: StoreLike = None) -> tuple[Record, str]:
    """A record and how to name it, from a file's path or ``run:ID`` (a run of kind record in ``db``);
    RecordError (or StoreError) in one line when it cannot be read."""
    if not operand.startswith(RUN_PREFIX):
        return read_record(operand), operand
    from detprof.store import open_store

    text = operand.removeprefix(RUN_PREFIX)
    require(text.isdigit(), f"record {operand!r} is not accepted; use a file's path or run:ID (a stored record)")
    with open_store(db) as store:
        kind = store.run_kind(int(text))
        if kind != "record":
            raise RecordError(f"record {operand!r} is not accepted: run {text} is a {kind} run, not a record; "
                              "`detprof runs` lists the records")
        summary = store.run_summary(int(text))
    return check_record(summary.get("record"), operand), operand
