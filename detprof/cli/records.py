"""``detprof record`` and ``detprof compare``: a training's digests kept as a portable file, and two
such files compared, on this machine or across machines, versions, devices and modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer

from detprof.check.limits import RUN_TIMEOUT_S
from detprof.cli.app import app
from detprof.cli.check import SCRIPT_ARGUMENTS, stored_verdict
from detprof.cli.common import DB_HELP, GPU_OPTION, JSON_OPTION, emit, user_errors, workload_options
from detprof.errors import require
from detprof.modes import MODES
from detprof.render.progress import progress_once_valid
from detprof.workload import WorkloadRequest


def stored_and_written(made: Any, target: str, db: str | None) -> Any:
    """Store a record as a run (kind record), then write its file; the stored document. Stored first:
    a file that cannot be written (a full disk) loses nothing the store has, and the error names the
    run that kept it."""
    from detprof.records.format import RecordError, write_record
    from detprof.records.stored import record_document

    document = stored_verdict("record", record_document(made, target), db)  # type: ignore[type-var]
    try:
        write_record(made, target)
    except RecordError as error:
        stored = f"; it is stored as run {document['run_id']} (compare it as run:{document['run_id']})" \
            if document.get("run_id") is not None else ""
        raise RecordError(f"{error}{stored}") from None
    return document


def parse_ops_at(text: str) -> tuple[int, ...]:
    """``--ops-at``: step numbers separated by commas, or ``none``."""
    if text.strip().lower() == "none":
        return ()
    parts = [part.strip() for part in text.split(",")]
    require(all(part.isdigit() for part in parts), f"--ops-at {text!r} is not accepted; use step numbers separated "
                                                   "by commas (1,5), or none")
    return tuple(int(part) for part in parts)


@app.command()
@workload_options
def record(
    request: WorkloadRequest,
    script_args: list[str] | None = SCRIPT_ARGUMENTS,
    script: str | None = typer.Option(None, help="Your own training script instead of --arch: run it once "
                                                 "(python SCRIPT SCRIPT_ARGS) in a new interpreter, watched as "
                                                 "check --script watches it, and record its optimizer steps. This "
                                                 "runs your code."),
    out: str | None = typer.Option(None, "--out", "-o", help="The record file to write (.json, or .json.gz "
                                                             "compressed; default: ARCH.record.json here)."),
    mode: str | None = typer.Option(None, help=f"The mode it trains in (default deterministic; with --script, as-is: "
                                               f"the script's own switches). Known: {', '.join(MODES)}."),
    gpu: str = GPU_OPTION,
    steps: int = typer.Option(3, help="Training steps recorded (1 to 1000; SGD on one synthetic batch)."),
    seed: int = typer.Option(0, help="Seed for weights and data."),
    lr: float | None = typer.Option(None, "--lr", help="The optimizer's learning rate (default: the workload's "
                                                       "own)."),
    ops_at: str | None = typer.Option(None, help="Steps whose every op is recorded with its module, pass and "
                                                 "digests, so that a comparison can name the first op that differs "
                                                 "(each in a further process), or none (default: 1; none with "
                                                 "--compile, whose ops Inductor replaces)."),
    threads: int | None = typer.Option(None, help="CPU intra-op threads (default 1)."),
    golden: str | None = typer.Option(None, help="A golden record to compare this one with (exit 1 when they "
                                                 "differ)."),
    refresh: bool = typer.Option(False, "--refresh", help="With --golden: write this record there instead of "
                                                          "comparing."),
    timeout: float = typer.Option(RUN_TIMEOUT_S, help="Seconds each process may take before it is killed."),
    db: str | None = typer.Option(None, help=DB_HELP + " The record is stored as a run (kind record)."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Record a training: every parameter's and buffer's digest after each step, the losses, the ops
    of chosen steps, and the environment, in one small file to commit or compare later.

    Exit 0 when recorded (with --golden: when it equals the golden record), 1 when it differs from
    the golden record, 3 when that comparison could not have seen a difference, 2 for bad input
    (a golden record that is missing without --refresh among it). See docs/records.md.
    """
    from detprof.check.record import check_verdict_store
    from detprof.records.compare import EXIT_CODES
    from detprof.records.format import require_writable
    from detprof.records.golden import against_golden, require_golden
    from detprof.records.make import check_record_options, make_record, make_script_record

    with user_errors():
        op_steps = parse_ops_at(ops_at) if ops_at is not None else ((), (1,))[not request.compiled]
        if script is not None or script_args:
            from detprof.check.script import check_script_path, require_script_alone

            require_script_alone(script, script_args or [], request, seed=seed, gpu=gpu, lr=lr,
                                 applies="--steps, --mode, --threads, --ops-at, --golden and --timeout")
            check_script_path(str(script))
        check_record_options(steps, op_steps, lr, seed, threads)
        require(not refresh or bool(golden),
                "--refresh is not accepted without --golden; give the golden record's path")
        known_golden = require_golden(golden, refresh) if golden else None
        check_verdict_store(db)
        named = Path(script).stem if script else (request.arch or request.model or request.workload or "record")
        target = out or f"{Path(named.split(':')[-1]).stem}.record.json"
        require_writable(target)
        if golden and refresh:
            require_writable(golden, "--golden")
        with progress_once_valid("record") as show:
            if script is not None:
                made = make_script_record(script, script_args or [], steps, mode, threads, op_steps, timeout,
                                          on_progress=show)
            else:
                made = make_record(request, mode or "deterministic", gpu, steps, seed, lr, op_steps, threads,
                                   timeout, on_progress=show)
        document = stored_and_written(made, target, db)
        code = 0
        if golden:
            document["golden"] = against_golden(made, golden, refresh, known_golden)
            comparison = document["golden"]["comparison"]
            code = EXIT_CODES[comparison["verdict"]] if comparison else 0
    emit("record", document, json_output)
    raise typer.Exit(code)


@app.command()
def compare(
    a: str = typer.Argument(..., metavar="A", help="A record: its file, or run:ID for one stored in --db."),
    b: str = typer.Argument(..., metavar="B", help="The record to compare it with (a file, or run:ID)."),
    db: str | None = typer.Option(None, help=DB_HELP + " The comparison is stored as a run (kind compare)."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Are two records bitwise equal? If not: the first divergent step, parameter and op, how far apart
    they ended, and what about how or where they were made could explain it, most likely first.

    Exit 0 when equal, 1 when they differ, 3 when the comparison could not have seen a difference,
    2 for bad input (a record of another workload, of a newer format, or damaged).
    """
    from detprof.records.compare import EXIT_CODES, compare_records
    from detprof.records.stored import comparison_document, load_record

    with user_errors():
        record_a, label_a = load_record(a, db)
        record_b, label_b = load_record(b, db)
        comparison = comparison_document(compare_records(record_a, record_b, (label_a, label_b)))
        document = stored_verdict("compare", comparison, db)  # type: ignore[type-var]
    emit("compare", document, json_output)
    raise typer.Exit(EXIT_CODES[comparison["verdict"]])


def record_decoding(arch: str | None, config: str | None, vocab: int | None, model: str | None, choice: Any,
                    new_tokens: int | None, seed: int, threads: int | None, gpu: str, timeout: float, mode: str,
                    target: str, db: str | None, json_output: bool) -> NoReturn:
    """``infer --record FILE``: the reference decoding as a record, stored (kind record) and written."""
    from detprof.records.inference import make_inference_record

    with progress_once_valid("infer --record") as show:
        made = make_inference_record(arch, config, vocab, model, choice, 16 if new_tokens is None else new_tokens,
                                     seed, threads, gpu, timeout, mode, on_progress=show)
    emit("record", stored_and_written(made, target, db), json_output)
    raise typer.Exit(0)
