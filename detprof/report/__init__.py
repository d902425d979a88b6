"""Report: the paper's figures from the results store, as one offline HTML file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detprof.documents import DOCUMENT_VERSION, ReportDocument
from detprof.outputs import OutputError, check_writable
from detprof.report.collect import ReportData, collect
from detprof.report.page import render
from detprof.store import StoreLike

DEFAULT_REPORT = Path("reports") / "detprof-report.html"


@dataclass(frozen=True)
class ReportResult:
    path: Path
    sections: dict[str, str]  # section -> "drawn" | "no data"
    runs: list[int]
    bytes: int
    skipped: tuple[str, ...] = ()  # stored rows and files the report left out (damaged, missing)

    def document(self) -> ReportDocument:
        """What ``report --json`` prints: the file, its size in bytes, the runs and the sections drawn."""
        return {"document_version": DOCUMENT_VERSION,
                "out": str(self.path), "bytes": self.bytes, "runs": self.runs, "sections": self.sections,
                "skipped": list(self.skipped)}


ReportError = OutputError  # the name the report's errors had before outputs.py


def build_report(db: StoreLike = None, out: str | Path | None = None,
                 run_ids: list[int] | None = None, kernels_run: int | None = None,
                 framework: str | None = None) -> ReportResult:
    """Write the HTML report of all runs (or ``run_ids``, or the runs of ``framework``: any spelling
    ``--framework`` takes) to ``out``; returns what was drawn.
    Figure 8 (kernels per mode) shows ``kernels_run`` when given, else the newest default vs
    deterministic run with kernels.

    Raises ReportError when ``out`` cannot be written (a directory, an unwritable folder, the
    results database itself)."""
    from detprof.errors import require
    from detprof.store import ResultStore, open_store
    from detprof.store.paths import resolve_db_path

    path = Path(out or DEFAULT_REPORT)
    check_writable(path, db.path if isinstance(db, ResultStore) else resolve_db_path(db))
    require(framework is None or not run_ids, "give --run or --framework, not both")
    if framework is not None:
        with open_store(db) as store:
            run_ids = store.run_ids(framework)
    data = collect(db, run_ids, kernels_run)
    page, sections = render(data)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as error:
        raise ReportError(f"--out {str(path)!r} cannot be written: {error.strerror or error}") from None
    return ReportResult(path=path, sections=sections, runs=data.run_ids, bytes=len(page.encode()),
                        skipped=tuple(data.skipped))


__all__ = ["DEFAULT_REPORT", "ReportData", "ReportError", "ReportResult", "build_report", "collect", "render"]
