"""Running a sweep: every job of a spec measured once, stored once, resumable after any fault.

    from detprof.sweep import run_sweep
    doc = run_sweep("benchmarks/sweep_cpu.toml", db="sweep.sqlite")     # as `detprof sweep --json`

Each job is an ``overhead`` measurement (its worker processes fresh, as always). Before a job
runs, the driver claims it in the store's ``sweep_jobs`` table; its run and the ``done`` mark are
written in one transaction; a failure (out of memory, a crash, a killed worker, an op error) is
recorded with its reason and the sweep goes on. Running the spec again skips what is done (and,
unless ``rerun_failed``, what failed), and re-runs jobs whose driver died mid-job.

Jobs run here one after another (``cluster=None``), as Ray tasks on a cluster (``cluster="ray"``
or ``"ray://HOST:PORT"``, see detprof.sweep.ray_cluster), or as Slurm jobs through submitit
(``cluster="slurm"``, or ``"slurm-local"`` for submitit's local executor, see
detprof.sweep.slurm_cluster); in every case only this process writes the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from detprof.documents import DOCUMENT_VERSION, SweepDocument
from detprof.errors import require
from detprof.gpus import select_device
from detprof.store import ResultStore, StoreLike, open_store, resolve_db_path
from detprof.sweep.jobs import (
    ProgressCallback,
    SweepProgress,
    now_utc,
    one_line,
    owner_alive,
    owner_id,
    store_job_result,
    this_host,
)
from detprof.sweep.plan import SweepJob, plan_sweep
from detprof.sweep.slurm_cluster import SLURM_CLUSTERS, SlurmOptions, check_options
from detprof.sweep.spec import SweepSpec, load_spec

if TYPE_CHECKING:  # pandas and scipy come with it: not before the spec is checked
    from detprof.runner.outcomes import JobOutcome

API_COMMAND = "Python API: detprof.sweep.run_sweep"


def _run_locally(store: ResultStore, job: SweepJob, command: str,
                 on_job_done: Callable[[JobOutcome], None] | None) -> None:
    from detprof.runner.launcher import measure_overhead
    from detprof.store.traces import trace_folder

    try:
        device = select_device(job.gpu)
        config = job.config(device)
        with trace_folder(store) as trace_dir:
            result = measure_overhead(config, device.kind, device.name, str(trace_dir), command=command,
                                      on_job_done=on_job_done)
    except Exception as error:  # the job failed; the sweep goes on (Ctrl-C is not an Exception)
        store.fail_sweep_job(job.key, one_line(error), this_host(), now_utc())
        return
    store_job_result(store, job, result, trace_dir, this_host())


def prepare_backend(spec: SweepSpec, cluster: str | None, slurm: SlurmOptions | None = None) -> None:
    """Check, before anything runs, that the spec can run where asked: here (and through submitit's
    local executor), every GPU type of the spec must be on this machine (GpuSelectionError naming
    what is); on Ray, the cluster must be reachable and have every GPU type (ClusterError naming
    what it has); on Slurm, submitit and sbatch must be here and the options valid (SlurmError)."""
    require(cluster is None or cluster == "ray" or cluster.startswith("ray://") or cluster in SLURM_CLUSTERS,
            f"--cluster {cluster!r} is not accepted; use ray (the local Ray or $RAY_ADDRESS), ray://HOST:PORT, slurm, "
            "or slurm-local (the Slurm path through submitit's local executor)")
    require(slurm is None or cluster in SLURM_CLUSTERS, "the --slurm-* options are for --cluster slurm or slurm-local")
    if cluster and cluster.startswith("ray://"):
        from detprof.sweep.ray_cluster import client_endpoint

        client_endpoint(cluster)  # its form, before anything is imported or reached
    if cluster in SLURM_CLUSTERS:
        check_options(cluster, slurm or SlurmOptions())
    if cluster == "slurm":
        return  # the GPU types are the jobs' constraints: Slurm finds the nodes, each job checks what it got
    if cluster is None or cluster == "slurm-local":
        for gpu in spec.gpus:
            select_device(gpu)
        return
    from detprof.sweep.ray_cluster import connect

    connect(cluster, spec)


def run_sweep(spec: str | Path | SweepSpec, db: StoreLike = None, cluster: str | None = None,
              rerun_failed: bool = False, on_progress: ProgressCallback | None = None,
              on_job_done: Callable[[JobOutcome], None] | None = None, command: str | None = None,
              slurm: SlurmOptions | None = None) -> SweepDocument:
    """Run every job of ``spec`` (a path or a SweepSpec) not yet in the store ``db``; returns the
    sweep document: ``jobs`` (one row per job: label, arch, kernel_size, gpu, modes, status,
    ``ran`` in this call, run_id, ratio with its 95% CI, kernel and memory ratio, device measured,
    error, node) and ``counts`` (done, failed, left, ran_now).

    ``cluster`` None runs here, one job at a time; ``"ray"`` (the local Ray, or $RAY_ADDRESS) or
    ``"ray://HOST:PORT"`` runs each job as a Ray task on a node with the spec's GPU type;
    ``"slurm"`` submits each as a Slurm job constrained to that GPU type, with ``slurm``'s
    partition, account, time limit and GPUs (``"slurm-local"``: through submitit's local executor,
    one at a time here). Raises SpecError, GpuSelectionError or SlurmError (one line) before
    anything runs.
    """
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    jobs = plan_sweep(spec)
    command = command or API_COMMAND
    prepare_backend(spec, cluster, slurm)
    with open_store(db, create=True) as store:
        store.store_pending()
        ran: set[str] = set()
        progress = SweepProgress(total=len(jobs))
        owner = owner_id()

        def claim(job: SweepJob) -> bool:
            state = store.claim_sweep_job(job.key, spec.name, job.label, job.identity(), owner, rerun_failed,
                                          owner_alive, now_utc())
            progress.done += state == "done"
            progress.failed += state == "failed"
            progress.total -= state == "running"  # another live sweep measures it
            return state == "claimed"

        def finished(job: SweepJob) -> None:
            ran.add(job.key)
            status = store.sweep_job_status(job.key)
            progress.done += status == "done"
            progress.failed += status == "failed"
            if job.label in progress.running:
                progress.running.remove(job.label)
            if on_progress:
                on_progress(progress)

        if cluster is None:
            # Claimed one at a time, just before it runs: two sweeps of one spec share the work.
            for job in jobs:
                if not claim(job):
                    continue
                progress.running = [job.label]
                if on_progress:
                    on_progress(progress)
                _run_locally(store, job, command, on_job_done)
                finished(job)
        elif cluster in SLURM_CLUSTERS:
            from detprof.sweep.slurm_cluster import run_on_slurm

            claimed = [job for job in jobs if claim(job)]
            run_on_slurm(store, claimed, command, progress, on_progress, finished, cluster, slurm)
        else:
            from detprof.sweep.ray_cluster import run_on_ray

            claimed = [job for job in jobs if claim(job)]
            run_on_ray(store, claimed, command, progress, on_progress, finished)
        return sweep_document(store, spec, jobs, ran, cluster)


def sweep_document(store: ResultStore | None, spec: SweepSpec, jobs: list[SweepJob], ran: set[str] | None = None,
                   cluster: str | None = None, store_path: str | None = None) -> SweepDocument:
    """The state of every job of ``spec`` in ``store`` (see run_sweep); ``ran`` marks the jobs run
    now. ``store`` None means nothing is stored yet (``store_path`` names where it would be)."""
    import pandas as pd

    rows = store.sweep_jobs().set_index("job_key") if store is not None else pd.DataFrame()
    table = []
    for job in jobs:
        row = rows.loc[job.key] if job.key in rows.index else None
        status = "left" if row is None else str(row["status"])
        if status == "running" and not owner_alive(str(row["owner"] or "")):  # type: ignore[index]
            status = "left"  # its driver died: the next run of the spec measures it
        run_id = None if row is None or pd.isna(row["run_id"]) else int(row["run_id"])
        summary = store.run_summary(run_id) if store is not None and run_id is not None and status == "done" else {}
        table.append({"label": job.label, "arch": job.arch, "kernel_size": job.kernel_size, "gpu": job.gpu,
                      "modes": list(job.modes), "status": status, "ran": bool(ran and job.key in ran),
                      "run_id": run_id if status == "done" else None, "ratio": summary.get("ratio"),
                      "ratio_ci": summary.get("ratio_ci"), "kernel_ratio": summary.get("kernel_ratio"),
                      "kernel_times_reliable": summary.get("kernel_times_reliable"),
                      "memory_ratio": summary.get("memory_ratio"),
                      "device_name": (summary.get("device") or {}).get("name"),
                      "error": None if row is None or status == "done" else row["error"],
                      "attempts": 0 if row is None else int(row["attempts"]),
                      "node": None if row is None else row["node"], "job_key": job.key})
    counts = {status: sum(r["status"] == status for r in table) for status in ("done", "failed", "running", "left")}
    counts["ran_now"] = sum(r["ran"] for r in table)
    return {"document_version": DOCUMENT_VERSION,
            "sweep": spec.name, "spec": str(spec.path), "store": str(store_path) if store is None else str(store.path),
            "cluster": cluster or "local", "jobs": table, "counts": counts}


def sweep_status(spec: str | Path | SweepSpec, db: StoreLike = None) -> SweepDocument:
    """What is stored of ``spec`` without running anything (the document of run_sweep)."""
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    jobs = plan_sweep(spec)
    if not isinstance(db, ResultStore) and not resolve_db_path(db).exists():  # nothing stored: all left, no file made
        return sweep_document(None, spec, jobs, store_path=str(resolve_db_path(db)))
    with open_store(db) as store:
        return sweep_document(store, spec, jobs)
