"""``detprof kernels``, ``diff`` and ``import``: where the time goes, per kernel, in a stored run or any
profiler trace. These commands import neither torch nor pandas' users until they read a store."""

from __future__ import annotations

import typer

from detprof.cli.app import app
from detprof.cli.common import DB_OPTION, JSON_OPTION, SCOPE_HELP, emit, fail, invoked_command, user_errors
from detprof.kernels.trace import DEFAULT_MAX_TRACE_MB

MAX_TRACE_MB_OPTION = typer.Option(
    float(DEFAULT_MAX_TRACE_MB), "--max-trace-mb",
    help="Refuse a trace whose file or JSON text (after gunzip) is larger than this, in MB (2^20 bytes), before "
         "parsing it.")


def _check_top(top: int) -> None:
    if top < 1:
        fail(f"--top {top} is not accepted; use an integer >= 1")


def _check_scope(scope: str) -> None:
    from detprof.kernels import SCOPES

    if scope not in SCOPES:
        fail(f"--scope {scope!r} is not accepted; use one of {', '.join(SCOPES)}")


@app.command()
def kernels(
    top: int = typer.Option(20, help="Kernels to list before the (others) row."),
    run: int | None = typer.Option(None, help="Run id (default: the latest run)."),
    mode: str | None = typer.Option(None, help="Mode to list (default: the run's second mode, e.g. deterministic, "
                                               "or its only mode with kernels)."),
    trace: str | None = typer.Option(None, help="Analyse this profiler trace instead of a stored run: PyTorch's "
                                                "(.json or .json.gz) or TensorFlow's (.xplane.pb)."),
    framework: str | None = typer.Option(None, help="Without --run: the newest run of this framework (pytorch or "
                                                    "tf)."),
    scope: str = typer.Option("steps", help=SCOPE_HELP),
    cpu_ops: bool = typer.Option(False, "--cpu-ops", help="With --trace: list the CPU ops (self time) of a GPU "
                                                          "program's trace that holds no GPU kernel events."),
    db: str | None = DB_OPTION,
    stats: bool = typer.Option(False, "--stats", help="Also show each kernel's median, min, max and std (µs)."),
    max_trace_mb: float = MAX_TRACE_MB_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Where the time goes, per kernel, and what changed between the run's two modes (or in any trace)."""
    from detprof.views import kernel_report, trace_report

    _check_top(top)
    _check_scope(scope)
    if trace is not None:
        ignored = [name for name, value in (("--run", run), ("--mode", mode), ("--framework", framework))
                   if value is not None]
        if ignored:  # silently reading the file instead of the run asked for would mislead
            fail(f"{ignored[0]} does not apply with --trace FILE (a trace is read from its file, not from a run); "
                 f"give --trace or {ignored[0]}, not both")
        with user_errors():
            emit("trace-kernels", trace_report(trace, top, scope, cpu_ops, max_trace_mb), json_output, stats=stats)
        return
    if cpu_ops:
        fail("--cpu-ops applies to --trace FILE only")
    with user_errors():
        report = kernel_report(db, run, mode, top, framework)
    emit("run-kernels", report, json_output, stats=stats)


@app.command()
def diff(
    a: str = typer.Argument(..., help="Baseline: a run id (N, or N:MODE) or a trace file."),
    b: str = typer.Argument(..., help="Treatment: a run id (N, or N:MODE) or a trace file."),
    top: int = typer.Option(30, help="Rows to show, largest absolute change first."),
    scope: str = typer.Option("steps", help=SCOPE_HELP),
    db: str | None = DB_OPTION,
    max_trace_mb: float = MAX_TRACE_MB_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Compare two runs or two traces: kernels added, removed and changed (calls, total, share)."""
    from detprof.views import kernel_diff

    _check_top(top)
    _check_scope(scope)
    with user_errors():
        report = kernel_diff(a, b, db, top, scope, max_trace_mb)
    emit("diff", report, json_output)


@app.command(name="import")
def import_(
    trace: str = typer.Argument(..., help="PyTorch profiler trace (.json or .json.gz) to store as a run."),
    label: str = typer.Option("trace", help="Mode label for the stored kernels."),
    arch: str | None = typer.Option(None, help="Name to show for the network (default: the file name)."),
    scope: str = typer.Option("steps", help=SCOPE_HELP),
    db: str | None = DB_OPTION,
    max_trace_mb: float = MAX_TRACE_MB_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Store any profiler trace as a run, for `kernels --run`, `diff` and the report."""
    from detprof.trace_import import import_trace

    _check_scope(scope)
    with user_errors():
        document = import_trace(trace, db, label, arch, scope, command=invoked_command(),
                                max_trace_mb=max_trace_mb)
    emit("import", document, json_output)
