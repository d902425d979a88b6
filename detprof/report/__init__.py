"""Report: the paper's figures from the results store, as one offline HTML file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detprof.report.collect import ReportData, collect
from detprof.report.page import render

DEFAULT_REPORT = Path("reports") / "detprof-report.html"


@dataclass(frozen=True)
class ReportResult:
    path: Path
    sections: dict[str, str]  # section -> "drawn" | "no data"
    runs: list[int]
    bytes: int


def build_report(db: str | None = None, out: str | Path | None = None,
                 run_ids: list[int] | None = None) -> ReportResult:
    """Write the HTML report of all runs (or ``run_ids``) to ``out``; returns what was drawn."""
    data = collect(db, run_ids)
    page, sections = render(data)
    path = Path(out or DEFAULT_REPORT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return ReportResult(path=path, sections=sections, runs=data.run_ids, bytes=len(page.encode()))


__all__ = ["DEFAULT_REPORT", "ReportData", "ReportResult", "build_report", "collect", "render"]
