"""``detprof check``, ``audit`` and ``advise``: is training bitwise reproducible, which op is to blame,
and the cheapest configuration that holds. Each verdict is stored as a run."""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

import typer

from detprof.check.limits import DEFAULT_AUDIT_STEPS, RUN_TIMEOUT_S
from detprof.cli.app import app
from detprof.cli.common import (
    DB_HELP,
    GPU_OPTION,
    JSON_OPTION,
    emit,
    gate_options,
    invoked_command,
    user_errors,
    workload_options,
)
from detprof.documents import (
    AdviseDocument,
    AuditDocument,
    BatchInvarianceDocument,
    CheckDocument,
    InferenceCostDocument,
    InferenceGridDocument,
    InferenceMismatchDocument,
)
from detprof.errors import DetprofError
from detprof.modes import MODES
from detprof.render.console import warning_line
from detprof.render.progress import progress_once_valid
from detprof.runner.config import CPU_THREADS
from detprof.workload import WorkloadRequest

SCRIPT_ARGUMENTS = typer.Argument(None, metavar="[-- SCRIPT_ARGS]", show_default=False,
                                  help="With --script: the arguments the script is given.")
Verdict = TypeVar("Verdict", CheckDocument, BatchInvarianceDocument, AuditDocument, AdviseDocument,
                  InferenceGridDocument, InferenceCostDocument, InferenceMismatchDocument)


def stored_verdict(kind: str, document: Verdict, db: str | None) -> Verdict:
    """The verdict document with the run id it was stored under (``run_id``). A store that cannot
    take it (locked, full) is named in one warning line and changes nothing else: the exit code
    stays the verdict's, as the check itself ran."""
    from detprof.check.record import store_verdict

    stored = document.copy()
    try:
        stored["run_id"] = store_verdict(kind, dict(document), db, invoked_command())
    except DetprofError as error:
        warning_line(f"the verdict was not stored: {error}")
        stored["run_id"], stored["store_error"] = None, str(error)
    return stored


def conclude(kind: str, document: Verdict, db: str | None, json_output: bool) -> NoReturn:
    """Store the verdict, emit it, and exit with its code: 0 passed, 1 failed, 3 inconclusive
    (detprof.check.verdict_kinds.VERDICTS)."""
    from detprof.check.verdict_kinds import outcome_of

    stored = stored_verdict(kind, document, db)
    emit(kind, stored, json_output)
    raise typer.Exit(outcome_of(kind, dict(stored))[0])


@app.command()
@workload_options
@gate_options
def check(
    request: WorkloadRequest,
    gates: dict[str, tuple[Any, Any]],
    script_args: list[str] | None = SCRIPT_ARGUMENTS,
    script: str | None = typer.Option(None, help="Your own training script instead of --arch: run it twice "
                                                 "(python SCRIPT SCRIPT_ARGS) in new interpreters, hash the "
                                                 "parameters after every optimizer step, compare. This runs "
                                                 "your code; see docs/cli.md."),
    mode: str | None = typer.Option(None, help=f"Mode of both runs (default deterministic; with --script, as-is: the "
                                               f"script's own switches). Known: {', '.join(MODES)}."),
    gpu: str = GPU_OPTION,
    steps: int | None = typer.Option(None, help="Training steps per run (SGD, momentum 0.9, one synthetic batch; "
                                                "default 10). With --script: the optimizer steps (or detprof.step() "
                                                "marks) compared, after which each run ends."),
    seed: int = typer.Option(0, help="Seed for weights and data (the same for both runs)."),
    locate_op: bool = typer.Option(False, "--locate-op", help="When the runs differ, re-run both up to the first "
                                                              "divergent step recording every op, and name the first "
                                                              "op whose output differs while its inputs matched."),
    batch_invariance: bool = typer.Option(False, "--batch-invariance",
                                          help="Instead of training: are eval outputs for the same examples bitwise "
                                               "equal at every batch size (against batch size 1)?"),
    batch_sizes: str = typer.Option("1,8,64", help="Batch sizes for --batch-invariance, 1 to 64."),
    framework: str = typer.Option("pytorch", help="pytorch, or tf: the Keras model in TensorFlow (modes default and "
                                                  "deterministic; no --locate-op or --batch-invariance)."),
    timeout: float = typer.Option(RUN_TIMEOUT_S, help="Seconds each run may take before it is killed (and the check "
                                                      "ends with exit 2)."),
    db: str | None = typer.Option(None, help=DB_HELP + " The verdict is stored as a run (kind check)."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Is training bitwise reproducible? Trains twice in fresh processes and compares every step.

    Exit 0 when the two runs are bitwise identical (or, with --batch-invariance, every batch size
    matches), 1 when they differ, 3 when the check could not have seen a difference (a NaN or an
    infinity, a 1-ulp control not detected, a varied factor that did not differ, a mode the code
    under test switched off), 2 for bad input. Each gate option (--threads to the last) makes the
    two runs differ in that one factor; see docs/cli.md.
    """
    from detprof.check import run_batch_invariance, run_check
    from detprof.check.record import check_verdict_store
    from detprof.check.run import DEFAULT_STEPS, require_batch_invariance_alone, require_timeout
    from detprof.cli.lists import parse_batch_sizes

    with user_errors():
        require_timeout(timeout)
        if script is not None or script_args:
            from detprof.check.script import AS_IS, require_script_alone, run_script_check

            require_script_alone(script, script_args or [], request, gates, batch_invariance=batch_invariance,
                                 framework=framework, seed=seed, gpu=gpu)
            check_verdict_store(db)
            with progress_once_valid("check") as show:
                document = run_script_check(str(script), script_args or [], DEFAULT_STEPS if steps is None else steps,
                                            mode or AS_IS, gates.get("threads"), locate_op, timeout_s=timeout,
                                            on_progress=show, framework=framework)
            conclude("check", document, db, json_output)
        mode = mode or "deterministic"
        if batch_invariance:
            require_batch_invariance_alone(gates, locate_op=locate_op, steps=steps)
            check_verdict_store(db)
            threads = gates["threads"][0] if "threads" in gates else None
            invariance = run_batch_invariance(request, mode, gpu, parse_batch_sizes(batch_sizes), threads, seed,
                                              framework=framework, timeout_s=timeout)
            conclude("batch-invariance", invariance, db, json_output)
        check_verdict_store(db)
        with progress_once_valid("check") as show:
            document = run_check(request, mode, gpu, gates, DEFAULT_STEPS if steps is None else steps, seed,
                                 locate_op, timeout_s=timeout, on_progress=show, framework=framework)
    conclude("check", document, db, json_output)


@app.command()
@workload_options
def audit(
    request: WorkloadRequest,
    gpu: str = GPU_OPTION,
    steps: int = typer.Option(DEFAULT_AUDIT_STEPS, help="Training steps audited (an op first taken after the last "
                                                        "one is not covered)."),
    timeout: float = typer.Option(RUN_TIMEOUT_S, help="Seconds the audited run may take before it is killed."),
    db: str | None = typer.Option(None, help=DB_HELP + " The findings are stored as a run (kind audit)."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Which ops cannot train deterministically on this device, and what deterministic mode swaps.

    Exit 0 when the model can train fully deterministically, 1 when an op has no deterministic
    implementation or the step turns deterministic algorithms off, 2 for bad input.
    """
    from detprof.check import run_audit
    from detprof.check.record import check_verdict_store
    from detprof.check.run import require_timeout

    with user_errors():
        require_timeout(timeout)
        check_verdict_store(db)
        with progress_once_valid("audit") as show:
            document = run_audit(request, gpu, timeout_s=timeout, on_progress=show, steps=steps)
    conclude("audit", document, db, json_output)


@app.command()
@workload_options
def advise(
    request: WorkloadRequest,
    gpu: str = GPU_OPTION,
    threads: int | None = typer.Option(None, help=f"CPU intra-op threads (default: {CPU_THREADS})."),
    steps: int = typer.Option(10, help="Training steps of each check (two fresh processes per candidate)."),
    max_time: float | None = typer.Option(None, help="Seconds each overhead comparison may spend (default: 120 on "
                                                     "GPU, 30 on CPU)."),
    db: str | None = typer.Option(None, help=DB_HELP),
    json_output: bool = JSON_OPTION,
) -> None:
    """The cheapest configuration confirmed bitwise reproducible here, its cost, and the lines to get it.

    Checks each candidate (default, deterministic algorithms alone, deterministic with autotuning,
    without the NaN fill, and the full deterministic mode; the GPU-only ones on a GPU), measures
    those that pass against default (stored as overhead runs), and recommends the cheapest. Exit 0
    with a recommendation, 1 when no candidate was bitwise identical, 2 for bad input.
    """
    from detprof.check.advise import run_advise

    with user_errors():
        with progress_once_valid("advise") as show:  # run_advise checks every value and the database first
            document = run_advise(request, gpu, threads, steps, max_time, db, invoked_command(), on_progress=show)
    conclude("advise", document, db, json_output)
