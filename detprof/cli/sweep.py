"""``detprof sweep``: many overhead measurements from one spec, here, on Ray or on Slurm, resumable."""

from __future__ import annotations

import sys
from typing import Any

import typer

from detprof.cli.app import app
from detprof.cli.common import DB_OPTION, JSON_OPTION, emit, fail, invoked_command, user_errors
from detprof.errors import require
from detprof.render.console import status_line
from detprof.render.progress import ask, can_ask, counts_bar
from detprof.render.sweep import sweep_start

CLUSTER_HELP = ("Run each job elsewhere: `ray` (the cluster at $RAY_ADDRESS, or a new local Ray) or ray://HOST:PORT, "
                "each job a Ray task on a node with the spec's GPU type; `slurm`, each job a Slurm job through "
                "submitit, the GPU type as its constraint; `slurm-local`, the Slurm path through submitit's local "
                "executor, one job at a time here. Only this process writes the store.")
SLURM = "With --cluster slurm: "


def _confirm_large(name: str, size: Any, yes: bool, json_output: bool) -> None:
    """Refuse a large plan unless --yes, or a person at a terminal says yes."""
    from detprof.sweep.plan import LARGE_PLAN

    if not size.large or yes:
        return
    asked = not json_output and sys.stdin.isatty() and can_ask()
    if not asked or not ask(f"sweep {name} plans {size.sentence()}. Start it?"):
        fail(f"sweep {name} plans {size.sentence()}, more than {LARGE_PLAN['processes']:,} processes "
             f"or {LARGE_PLAN['training_steps']:,} training steps; check the spec, or add --yes to start it")


@app.command()
def sweep(
    spec: str = typer.Argument(..., help="Sweep spec (TOML), e.g. benchmarks/figure9b.toml."),
    gpus: str | None = typer.Option(None, help="GPU types to run instead of the spec's, e.g. h200 or v100,a100 (or "
                                               "cpu): the same spec on the GPUs at hand."),
    cluster: str | None = typer.Option(None, help=CLUSTER_HELP),
    rerun_failed: bool = typer.Option(False, "--rerun-failed", help="Run the jobs recorded as failed again (a resume "
                                                                     "otherwise keeps them)."),
    status: bool = typer.Option(False, "--status", help="Show what is stored of the spec; run nothing."),
    probe: bool = typer.Option(False, "--probe", help="With --cluster: one task per GPU type, placed as its jobs "
                                                      "would be, shows the node and the GPU it got; runs no job."),
    slurm_partition: str | None = typer.Option(None, help=SLURM + "the partition (sbatch --partition)."),
    slurm_account: str | None = typer.Option(None, help=SLURM + "the account charged (sbatch --account)."),
    slurm_time: int = typer.Option(60, help=SLURM + "each job's time limit in minutes (sbatch --time)."),
    slurm_gpus: int = typer.Option(1, help=SLURM + "GPUs per job (the measurement uses the first)."),
    slurm_constraint: str | None = typer.Option(None, help=SLURM + "the site's node feature per GPU type, as "
                                                           "ALIAS=FEATURE,... (default: the alias itself, e.g. v100)."),
    slurm_option: str | None = typer.Option(None, help=SLURM + "further sbatch options as NAME=VALUE,..., e.g. "
                                                       "qos=high."),
    slurm_folder: str = typer.Option(".detprof/slurm", help=SLURM + "where submitit keeps each job's script, "
                                                                  "pickles and logs."),
    yes: bool = typer.Option(False, "--yes", help="Start a large plan (more than 2,000 worker processes or 5 "
                                                   "million training steps) without asking."),
    db: str | None = DB_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Many overhead measurements from one spec (archs x kernel sizes x modes x GPUs), resumable:
    running it again skips what is stored. Exit 1 when a job is left failed."""
    from detprof.cli.lists import parse_mapping, parse_names
    from detprof.store import ensure_store
    from detprof.sweep import load_spec, plan_sweep, run_sweep, sweep_status, with_gpus
    from detprof.sweep.plan import plan_size
    from detprof.sweep.run import prepare_backend
    from detprof.sweep.slurm_cluster import SLURM_CLUSTERS, SlurmOptions, describe

    with user_errors():
        given = {"--slurm-partition": slurm_partition, "--slurm-account": slurm_account,
                 "--slurm-constraint": slurm_constraint, "--slurm-option": slurm_option}
        slurm = None
        if cluster in SLURM_CLUSTERS:
            slurm = SlurmOptions(slurm_partition, slurm_account, slurm_time, slurm_gpus,
                                 parse_mapping("--slurm-constraint", slurm_constraint),
                                 slurm_folder, parse_mapping("--slurm-option", slurm_option))
        else:
            named = [name for name, value in given.items() if value is not None]
            require(not named, f"{', '.join(named)} go with --cluster slurm or slurm-local; add it or drop them")
        loaded = load_spec(spec)
        if gpus is not None:
            loaded = with_gpus(loaded, parse_names(gpus))
        jobs = plan_sweep(loaded)
        require(not probe or cluster is not None, "--probe checks placement on a Ray cluster; add --cluster ray")
        if probe:
            from detprof.sweep.ray_cluster import probe_document

            emit("probe", probe_document(loaded, str(cluster)), json_output)
            return
        if status:
            emit("sweep", sweep_status(loaded, db), json_output)
            return
        size = plan_size(jobs)
        _confirm_large(loaded.name, size, yes, json_output)
        prepare_backend(loaded, cluster, slurm)  # fails in seconds when the cluster lacks a GPU type
        ensure_store(db)
    if not json_output:
        where = "here" if cluster is None else describe(cluster, loaded, slurm) if slurm else f"on Ray ({cluster})"
        sweep_start(loaded.name, size.sentence(), where)
    with counts_bar() as progress:
        task = progress.add_task(loaded.name, total=len(jobs), counts="")

        def show(state: Any) -> None:
            current = state.running[0] if len(state.running) == 1 else f"{len(state.running)} running"
            progress.update(task, completed=state.done + state.failed, total=max(state.total, 1),
                            description=current if state.running else loaded.name,
                            counts=f"done {state.done} · failed {state.failed} · left {state.left}")

        with user_errors():
            document = run_sweep(loaded, db=db, cluster=cluster, rerun_failed=rerun_failed, on_progress=show,
                                 command=invoked_command(), slurm=slurm)
    emit("sweep", document, json_output)
    failed = document["counts"]["failed"]
    if failed:
        status_line(f"detprof: {failed} job(s) failed; `detprof sweep {spec} --rerun-failed` runs them again")
        raise typer.Exit(1)
