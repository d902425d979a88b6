"""``detprof overhead``: default against deterministic (or any two modes), or each switch alone."""

from __future__ import annotations

from typing import Any

import typer

from detprof.cli.app import app
from detprof.cli.common import (
    DB_OPTION,
    FRAMEWORK_HELP,
    GPU_OPTION,
    JSON_OPTION,
    THREADS_HELP,
    defaults_of,
    emit,
    invoked_command,
    user_errors,
    workload_options,
)
from detprof.errors import require
from detprof.modes import ABLATION, MODES
from detprof.render import overhead as show
from detprof.render.console import print_text, status_line
from detprof.render.progress import progress_once_valid
from detprof.workload import WorkloadRequest


@app.command()
@workload_options
def overhead(
    request: WorkloadRequest,
    framework: str = typer.Option("pytorch", help=FRAMEWORK_HELP),
    gpu: str = GPU_OPTION,
    modes: str | None = typer.Option(None, help="Two modes A,B; the ratio is B/A (default: default,deterministic). "
                                                f"Known: {', '.join(MODES)}. `default,default` is the A/A test."),
    ablate: bool = typer.Option(False, "--ablate", help="Measure each switch of the deterministic mode on its own "
                                                        "against default, one stored run per switch (GPU-only "
                                                        "switches are skipped on a CPU)."),
    ablate_modes: str | None = typer.Option(None, help="With --ablate: only these steps, as M,M,... Steps: "
                                                       f"{', '.join(step.mode for step in ABLATION)}."),
    warmup: int | None = typer.Option(None, help=f"Warm-up steps, excluded ({defaults_of('warmup_steps')})."),
    steps: int | None = typer.Option(None, help=f"Timed steps per job ({defaults_of('timed_steps')})."),
    profile_steps: int | None = typer.Option(None, help=f"Profiled steps per mode, 0 to skip "
                                                        f"({defaults_of('profile_steps')})."),
    repeats: int | None = typer.Option(None, help="Pairs of fresh processes (one per mode, balanced order AB, BA, "
                                                  f"...) that always run ({defaults_of('repeats')}). Given without "
                                                  "--precision: exactly this many."),
    precision: float | None = typer.Option(None, help="Target half-width of the ratio's 95% CI as a fraction "
                                                      "(0.02 = ±2%): pairs are added until it is reached or "
                                                      f"--max-time is spent ({defaults_of('precision')}); 0 runs "
                                                      "exactly --repeats pairs."),
    max_time: float | None = typer.Option(None, help="Seconds the adaptive protocol may spend measuring; no pair "
                                                     f"starts that would overrun it ({defaults_of('max_time_s')})."),
    threads: int | None = typer.Option(None, help=THREADS_HELP),
    seed: int = typer.Option(0, help="Seed for weights and synthetic data (same for every job)."),
    job_timeout: float = typer.Option(1800.0, help="Seconds before a job is killed and recorded as timed out."),
    db: str | None = DB_OPTION,
    max_tax: float | None = typer.Option(None, help="The tax gate: exit 0 when the ratio's 95% CI is at or under "
                                                    "this ratio (1.35: at most 35% slower), 1 when it is over it, 3 "
                                                    "when the CI holds it (see --inconclusive)."),
    inconclusive: str = typer.Option("fail", help="With --max-tax: what a CI that holds the limit counts as, pass or "
                                                  "fail (it is reported as inconclusive either way)."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Default vs deterministic: step time, kernel time, memory, and the ratio with a 95% CI.

    With --max-tax, a gate on that ratio: pass when the CI's upper bound is at or under the limit,
    fail when its lower bound is over it, inconclusive otherwise."""
    from detprof.cli.lists import parse_modes
    from detprof.gpus import select_device
    from detprof.modes import DEFAULT_MODE_PAIR
    from detprof.overhead import measure_and_store
    from detprof.runner.config import build_config
    from detprof.store import ensure_store

    measurement: dict[str, Any] = dict(
        warmup_steps=warmup, timed_steps=steps, profile_steps=profile_steps, repeats=repeats, threads=threads,
        seed=seed, job_timeout_s=job_timeout, precision=precision, max_time_s=max_time, framework=framework)
    if ablate or ablate_modes:
        with user_errors():
            require(modes is None, "--ablate measures every step against default; drop --modes")
        _ablation(request, gpu, db, json_output, ablate_modes, measurement)
        return
    with user_errors():
        if max_tax is not None or inconclusive != "fail":
            from detprof.ci.tax import require_limit

            require(max_tax is not None, "--inconclusive is not accepted without --max-tax; give the limit")
            require_limit(float(max_tax), inconclusive)  # type: ignore[arg-type]  # given, as just required
        device = select_device(gpu)
        # Every value, and the database, checked before the plan says what will run.
        config = build_config(request, device, modes=parse_modes(modes) if modes else DEFAULT_MODE_PAIR, **measurement)
        ensure_store(db)
    if not json_output:
        show.plan(config, device)
    protocol = config.protocol
    total = protocol.repeats * 2  # adaptive runs have no known total: toward the minimum, then the cap
    with progress_once_valid("overhead") as report_progress:

        def advance(job: Any) -> None:
            done = job.spec.index + 1
            budget = f" (adaptive, up to {protocol.max_time_s:g} s)" if protocol.adaptive else ""
            report_progress(f"{config.workload.arch}: pair {job.spec.repeat + 1} {job.spec.mode} {job.status}{budget}",
                 completed=done, total=max(total, done + (done % 2)))

        with user_errors():
            document = measure_and_store(config, device, db=db, on_job_done=advance, command=invoked_command())
    gate = None
    if max_tax is not None:
        from detprof.ci.tax import judge_document

        gate = judge_document(dict(document), max_tax, inconclusive)
    # under --json the gate's verdict is one more field of the document (the stored run has none)
    emit("overhead", {**document, "tax_gate": gate.as_dict()} if gate else document, json_output)
    if gate is not None:
        if not json_output:
            print_text(f"{gate.sentence}\n")
        raise typer.Exit(gate.exit_code)
    if document["ratio"] is None:
        status_line(f"detprof: run {document['run_id']} stored, but no ratio: every job of at least one mode failed")
        raise typer.Exit(1)


def _ablation(request: WorkloadRequest, gpu: str, db: str | None, json_output: bool, only: str | None,
              options: dict[str, Any]) -> None:
    from detprof.gpus import select_device
    from detprof.overhead import ablation_configs, run_ablation
    from detprof.store import ensure_store

    with user_errors():
        chosen = [m.strip() for m in only.split(",") if m.strip()] if only else None
        device = select_device(gpu)
        plans, skipped = ablation_configs(request, device, chosen, **options)
        ensure_store(db)
    if not json_output:
        show.plan(plans[0][1], device)
        show.ablation_plan(len(plans), len(skipped))
    with progress_once_valid("ablation") as report_progress:

        def started(step: Any, number: int, total: int) -> None:
            report_progress(f"ablation {number}/{total}: {step.mode}", completed=number - 1, total=total)

        with user_errors():
            document = run_ablation(request, gpu, db, chosen, on_step=started, command=invoked_command(), **options)
    emit("ablation", document, json_output)
