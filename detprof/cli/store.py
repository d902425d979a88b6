"""``detprof runs``, ``db merge`` and ``db export``: what the store holds, and moving it between machines."""

from __future__ import annotations

import typer

from detprof.cli.app import app
from detprof.cli.common import DB_OPTION, JSON_OPTION, emit, user_errors
from detprof.render.console import print_text, status_line, warning_line

db_app = typer.Typer(help="Move results between stores: merge another machine's database, export runs.",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")


def warn_skipped(sentences: list[str]) -> None:
    """One stderr line per stored row or file a reader left out, so that one bad row is named and
    the rest is still shown."""
    for sentence in sentences:
        warning_line(f"left out {sentence}")


@app.command()
def runs(db: str | None = DB_OPTION, json_output: bool = JSON_OPTION) -> None:
    """List stored runs, newest first."""
    from detprof.views import runs_document

    with user_errors():
        document = runs_document(db)
    warn_skipped(document["skipped"])
    emit("runs", document, json_output)


@db_app.command("merge")
def db_merge(
    other: str = typer.Argument(..., help="Another detprof results database (.sqlite), e.g. from another GPU box."),
    db: str | None = DB_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Bring another store's runs (with jobs, steps, kernels and traces), sweep jobs and stability
    runs into this one, skipping what is already here: merging twice changes nothing."""
    from detprof.store.transfer import merge_store

    with user_errors():
        counts = merge_store(db, other)
    emit("merge", counts, json_output, source=other)


@db_app.command("export")
def db_export(
    format: str = typer.Option("csv", "--format", help="csv (one row per run) or json (full configuration, "
                                                        "environment and summary of each run)."),
    output: str | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    db: str | None = DB_OPTION,
    json_output: bool = typer.Option(False, "--json", help="The same as --format json."),
) -> None:
    """Every stored overhead run as CSV or JSON, for analysis elsewhere."""
    from detprof.store.transfer import export_runs_to

    skipped: list[str] = []
    with user_errors():
        text = export_runs_to(db, "json" if json_output else format, output, skipped)
    warn_skipped(skipped)
    if text is None:
        status_line(f"wrote {output}")
    else:
        print_text(text)
