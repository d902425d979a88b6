"""Sweep jobs as Slurm jobs, submitted through submitit.

Each job of a sweep becomes one Slurm job asking for one GPU of the spec's type: the GPU alias is
the job's ``--constraint`` (a site that names its node features otherwise maps them with
``constraints``, e.g. ``{"v100": "volta32gb"}``), with the partition, account, time limit and GPUs
per job passed through as given. Inside the job the measurement runs exactly as ``detprof
overhead`` runs it and checks that the GPU it got is the type asked for; the job returns the
measurement and its traces, and only the driver (this process) writes the store, as with Ray.
A job that fails, times out or is cancelled is recorded with its reason; the sweep goes on.

``slurm-local`` runs the same path through submitit's local executor, one job at a time on this
machine (jobs that time a training must not share it): the way to try a spec, and what the tests
run. submitit is an optional extra: ``pip install 'detprof[slurm]'``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detprof.errors import DetprofError, require
from detprof.sweep.plan import SweepJob
from detprof.sweep.spec import SweepSpec

if TYPE_CHECKING:
    from detprof.store import ResultStore
    from detprof.sweep.jobs import ProgressCallback, RemoteAnswer, SweepProgress

SLURM_CLUSTERS = ("slurm", "slurm-local")
INSTALL_HINT = "pip install 'detprof[slurm]'"
CPU_JOB_CPUS = 2  # the measured thread and the process driving it, as for Ray
DEFAULT_TIME_MIN = 60
POLL_S = 1.0
# What a value may hold: each becomes a "#SBATCH --name=value" line of the job's script, where a line
# break would start a shell command of its own. Slurm's names are these characters; features add
# the operators of a --constraint expression.
SLURM_NAME = re.compile(r"[A-Za-z0-9_.,-]+")
SLURM_CONSTRAINT = re.compile(r"[A-Za-z0-9_.,&|\[\]*:()!-]+")
SLURM_OPTION = re.compile(r"[a-z][a-z0-9_-]*")
SLURM_VALUE = re.compile(r"[!#-&(-~]+")  # printable ASCII without space, " or '


class SlurmError(DetprofError):
    """The Slurm path cannot run the sweep: submitit missing, no ``sbatch`` here, or bad options."""


@dataclass(frozen=True)
class SlurmOptions:
    """What a Slurm site needs of each job: ``partition``, ``account``, ``time_min`` (the job's time
    limit, minutes), ``gpus_per_job``, ``constraints`` (GPU alias to the site's node feature; the
    alias itself otherwise), ``folder`` (submitit's scripts, pickles and logs) and ``extra``
    (further sbatch options as name to value, e.g. ``{"qos": "high"}``)."""

    partition: str | None = None
    account: str | None = None
    time_min: int = DEFAULT_TIME_MIN
    gpus_per_job: int = 1
    constraints: Mapping[str, str] = field(default_factory=dict)
    folder: str = ".detprof/slurm"
    extra: Mapping[str, str] = field(default_factory=dict)


def check_options(cluster: str, options: SlurmOptions) -> None:
    """Raise ArgumentError for an option no Slurm site accepts, and SlurmError when submitit (or,
    for ``slurm``, sbatch) is missing here: before anything is submitted."""
    require(1 <= options.time_min <= 60 * 24 * 30,
            f"--slurm-time {options.time_min} is not accepted; use minutes from 1 to {60 * 24 * 30:,}")
    require(1 <= options.gpus_per_job <= 16,
            f"--slurm-gpus {options.gpus_per_job} is not accepted; use 1 to 16 GPUs per job")
    for name in ("partition", "account"):
        value = getattr(options, name)
        require(value is None or SLURM_NAME.fullmatch(value) is not None,
                f"--slurm-{name} {value!r} is not accepted; give the name Slurm knows (letters, digits, _ . - and , "
                "between several)")
    for gpu, feature in options.constraints.items():
        require(SLURM_NAME.fullmatch(gpu) is not None and SLURM_CONSTRAINT.fullmatch(feature) is not None,
                f"--slurm-constraint {gpu}={feature!r} is not accepted; give node features as Slurm writes them "
                "(letters, digits, _ . - and the operators & | [ ] * ( ) !)")
    for key, value in options.extra.items():
        require(SLURM_OPTION.fullmatch(key) is not None,
                f"--slurm-option {key!r} is not accepted; give an sbatch option's long name (letters, digits, - and "
                "_), e.g. qos=high")
        require(SLURM_VALUE.fullmatch(value) is not None,
                f"--slurm-option {key}={value!r} is not accepted; give a value of printable characters without "
                "spaces, quotes or line breaks")
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise SlurmError(f"--cluster {cluster} needs submitit, which is not installed; install it with: "
                         f"{INSTALL_HINT}") from None
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise SlurmError("--cluster slurm submits with sbatch, which is not on this machine's PATH; run the sweep "
                         "from a Slurm login node, or try it here with --cluster slurm-local")


def job_parameters(gpu: str, options: SlurmOptions) -> dict[str, Any]:
    """submitit parameters of a job on GPU type ``gpu`` (``cpu``: CPU_JOB_CPUS CPUs, no GPU)."""
    parameters: dict[str, Any] = {"timeout_min": options.time_min, "nodes": 1, "tasks_per_node": 1,
                                  "name": f"detprof-{gpu}"}
    if gpu == "cpu":
        parameters.update(cpus_per_task=CPU_JOB_CPUS)
    else:
        parameters.update(gpus_per_node=options.gpus_per_job, cpus_per_task=1 + options.gpus_per_job,
                          slurm_constraint=options.constraints.get(gpu, gpu))
    if options.partition:
        parameters["slurm_partition"] = options.partition
    if options.account:
        parameters["slurm_account"] = options.account
    if options.extra:
        parameters["slurm_additional_parameters"] = dict(options.extra)
    return parameters


def node_description() -> str:
    """Where this code runs: ``hostname (Slurm job ID)``, or the host name outside Slurm."""
    import socket

    job = os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID")
    return f"{socket.gethostname()} (Slurm job {job})" if job else socket.gethostname()


def measure_in_job(job: SweepJob, command: str) -> RemoteAnswer:
    """What a Slurm job runs: the sweep job's measurement on the GPU Slurm gave it; result, traces
    (bytes by file name) and node (see detprof.sweep.jobs.measure_with_traces)."""
    from detprof.sweep.jobs import measure_with_traces

    return measure_with_traces(job, command, "detprof-slurm-", node_description())


def _failure(error: BaseException) -> str:
    """One line for a job that failed: the job's own error, the last line of the trace submitit's
    report holds between its rules of dashes (else the report's last line: a timeout, a cancel)."""
    text = str(error)
    parts = text.split("-" * 22)
    trace = parts[1] if len(parts) >= 3 else text
    lines = [line.strip() for line in trace.splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:500]


def run_on_slurm(store: ResultStore, jobs: list[SweepJob], command: str, progress: SweepProgress,
                 on_progress: ProgressCallback | None, finished: Callable[[SweepJob], None],
                 cluster: str = "slurm", options: SlurmOptions | None = None,
                 task: Callable[[SweepJob, str], RemoteAnswer] = measure_in_job) -> None:
    """Submit every job (``slurm``: all at once, one Slurm job each; ``slurm-local``: one at a time
    on this machine), store each result as it arrives, here in the driver, and record failures;
    Ctrl-C cancels what is still queued or running. ``task`` is what each job runs."""
    import submitit

    from detprof.sweep.jobs import now_utc, store_remote_result

    options = options or SlurmOptions()
    executor = submitit.AutoExecutor(folder=Path(options.folder), cluster="local" if cluster == "slurm-local"
                                     else "slurm")
    waiting = list(jobs)
    running: dict[Any, SweepJob] = {}
    at_once = 1 if cluster == "slurm-local" else len(jobs)
    try:
        while waiting or running:
            while waiting and len(running) < at_once:
                job = waiting.pop(0)
                executor.update_parameters(**job_parameters(job.gpu, options))
                running[executor.submit(task, job, command)] = job
            progress.running = [job.label for job in running.values()]
            if on_progress:
                on_progress(progress)
            done = [submitted for submitted in running if submitted.done()]
            if not done:
                time.sleep(POLL_S)
                continue
            for submitted in done:
                job = running.pop(submitted)
                try:
                    answer = submitted.result()
                except Exception as error:  # FailedJobError, UncompletedJobError (timeout, cancel, node failure)
                    store.fail_sweep_job(job.key, _failure(error), None, now_utc())
                else:
                    store_remote_result(store, job, answer)
                finished(job)
    except BaseException:
        for submitted in running:
            submitted.cancel(check=False)
        raise


def describe(cluster: str, spec: SweepSpec, options: SlurmOptions) -> str:
    """Where the sweep runs, for its first line: ``on Slurm (partition p, account a, 60 min a job)``."""
    if cluster == "slurm-local":
        return "through submitit's local executor (the Slurm path, one job at a time here)"
    parts = [f"partition {options.partition}" if options.partition else "the default partition",
             *([f"account {options.account}"] if options.account else []), f"{options.time_min} min a job"]
    gpus = [g for g in spec.gpus if g != "cpu"]
    if gpus:
        parts.append("constraint " + ", ".join(options.constraints.get(g, g) for g in gpus))
    return f"on Slurm ({', '.join(parts)})"
