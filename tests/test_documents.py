"""Every document has its type: the golden documents (real --json output) hold exactly the keys
of their TypedDict in detprof/documents.py, all of them at the current document_version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from detprof import documents

DOCUMENTS = Path(__file__).parent / "data" / "documents"
TYPES: dict[str, Any] = {
    "overhead": documents.OverheadDocument, "ablation": documents.AblationDocument,
    "check": documents.CheckDocument, "batch-invariance": documents.BatchInvarianceDocument,
    "audit": documents.AuditDocument, "advise": documents.AdviseDocument,
    "trace-kernels": documents.TraceKernelsDocument, "run-kernels": documents.RunKernelsDocument,
    "diff": documents.DiffDocument, "import": documents.ImportDocument, "runs": documents.RunsDocument,
    "gpus": documents.GpusDocument, "merge": documents.MergeDocument, "report": documents.ReportDocument,
    "sweep": documents.SweepDocument, "probe": documents.ProbeDocument, "stability": documents.StabilityDocument,
    "record": documents.RecordRunDocument, "compare": documents.ComparisonDocument,
}


def key_problems(document: dict[str, Any], kind: Any, versioned: bool = True) -> list[str]:
    """What a document does wrong against its TypedDict: keys it lacks that the type requires, keys
    the type does not have, and (for a whole document) a missing or old document_version."""
    allowed = set(get_type_hints(kind))
    problems = [f"missing {key}" for key in sorted(kind.__required_keys__ - set(document))]
    problems += [f"unknown {key}" for key in sorted(set(document) - allowed)]
    if versioned and document.get("document_version") != documents.DOCUMENT_VERSION:
        problems.append(f"document_version {document.get('document_version')!r}")
    return problems


@pytest.mark.parametrize("kind", sorted(TYPES))
def test_each_golden_document_has_exactly_its_types_keys(kind: str) -> None:
    document = json.loads((DOCUMENTS / f"{kind}.json").read_text())
    assert key_problems(document, TYPES[kind]) == []


def test_overhead_modes_have_the_keys_of_their_type() -> None:
    document = json.loads((DOCUMENTS / "overhead.json").read_text())
    for mode in document["modes"]:
        assert key_problems(mode, documents.ModeFigures, versioned=False) == []


def test_every_zoo_row_has_its_version_and_the_keys_of_its_type() -> None:
    rows = json.loads((DOCUMENTS / "zoo.json").read_text())
    assert len(rows) > 20 and all(key_problems(row, documents.ZooRow) == [] for row in rows)


def test_control_a_document_with_a_key_too_many_or_too_few_is_caught() -> None:
    document = json.loads((DOCUMENTS / "overhead.json").read_text())
    assert key_problems({**document, "speedup": 2.0}, documents.OverheadDocument) == ["unknown speedup"]
    del document["verdict"]
    document["document_version"] = 0
    assert key_problems(document, documents.OverheadDocument) == ["missing verdict", "document_version 0"]
