"""``detprof report``: one offline HTML file with the paper's figures from the stored runs."""

from __future__ import annotations

import typer

from detprof.cli.app import app
from detprof.cli.common import DB_OPTION, JSON_OPTION, emit, fail, user_errors
from detprof.cli.store import warn_skipped

PLOTLY_MISSING = ("the HTML report needs plotly, which is not installed here: pip install plotly "
                  "(on a machine without network, install its wheel: pip install --no-index plotly-*.whl)")


@app.command()
def report(
    out_path: str = typer.Option("reports/detprof-report.html", "--out", help="Where to write the HTML file."),
    run: list[int] | None = typer.Option(None, help="Only these run ids (repeat the option); default: all runs."),  # noqa: B008
    framework: str | None = typer.Option(None, help="Only the runs of this framework (pytorch or tf); default: "
                                                    "both, with PyTorch and TensorFlow side by side."),
    kernels_run: int | None = typer.Option(None, "--kernels-run", help="The run whose kernels Figure 8 shows; "
                                           "default: the newest default vs deterministic run with kernels."),
    db: str | None = DB_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Write one offline HTML file with the paper's figures from your runs."""
    from detprof.outputs import check_writable
    from detprof.store.paths import resolve_db_path

    with user_errors():
        check_writable(out_path, resolve_db_path(db))  # a bad --out is named before a missing plotly
    try:
        import plotly  # noqa: F401  (the report draws with it; a GPU machine without network may lack it)
    except ImportError:
        fail(PLOTLY_MISSING)
    from detprof.report import build_report

    with user_errors():
        result = build_report(db, out_path, run or None, kernels_run, framework)
    warn_skipped(list(result.skipped))
    emit("report", result.document(), json_output)
