"""What a sweep's driver and its cluster backends (Ray, Slurm) share about one job: who holds it,
how it ended, how its result is measured remotely and stored, and the progress counts.
``sweep.run``, ``sweep.ray_cluster`` and ``sweep.slurm_cluster`` build on this module, so none
imports another in a circle."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detprof.errors import DetprofError
from detprof.parse import is_whole_number
from detprof.process.host import process_alive
from detprof.store import ResultStore
from detprof.sweep.plan import SweepJob

if TYPE_CHECKING:  # pandas and scipy come with it: not before the spec is checked
    from detprof.runner.outcomes import OverheadResult


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def this_host() -> str:
    return socket.gethostname()


def owner_id() -> str:
    """Who holds a claimed job: ``host:pid`` of this sweep driver."""
    return f"{this_host()}:{os.getpid()}"


def owner_alive(owner: str) -> bool:
    """Whether the sweep driver ``host:pid`` still runs. Another host's driver cannot be checked
    from here and is taken to be alive (stores are merged across machines, never shared)."""
    host, _, pid = owner.rpartition(":")
    if host != this_host() or not is_whole_number(pid):
        return True
    return process_alive(int(pid))


def one_line(error: BaseException) -> str:
    """An exception as one line: its type (unless detprof's own) and first line of message."""
    text = (str(error).strip().splitlines() or [""])[0]
    return text if isinstance(error, DetprofError) else f"{type(error).__name__}: {text}"


def failure_reason(result: OverheadResult) -> str | None:
    """Why a measurement cannot stand as a sweep job's result (a worker that failed, or no
    complete pair), or None when it can."""
    failed = [job for job in result.jobs if not job.ok]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more failed worker(s))" if len(failed) > 1 else ""
        return f"{first.spec.mode} pair {first.spec.repeat + 1}: {first.status}: {first.error}{more}"
    if result.ratio is None:
        return "no complete pair of jobs"
    return None


@dataclass
class SweepProgress:
    """Counts while a sweep runs: jobs done (stored, now or before), failed, and left to run."""

    total: int
    done: int = 0
    failed: int = 0
    running: list[str] = field(default_factory=list)

    @property
    def left(self) -> int:
        return self.total - self.done - self.failed


ProgressCallback = Callable[[SweepProgress], None]


def _sweep_config(job: SweepJob) -> dict[str, Any]:
    """What a sweep adds to a stored run's configuration."""
    return {"sweep": {"name": job.sweep, "job_key": job.key, "gpu": job.gpu, "label": job.label}}


def store_job_result(store: ResultStore, job: SweepJob, result: OverheadResult, trace_dir: Path,
                     node: str) -> int | None:
    """Store a finished job's measurement and mark it done, or record why it failed; returns the
    run id (None when failed, or when another sweep stored the same job first)."""
    from detprof.store.records import run_records
    from detprof.store.traces import release_trace_folder

    reason = failure_reason(result)
    if reason is not None:
        shutil.rmtree(trace_dir, ignore_errors=True)
        store.fail_sweep_job(job.key, reason, node, now_utc())
        return None
    try:
        run_id = store.save_run(*run_records(result, _sweep_config(job)), sweep_job=job.key)
    finally:
        release_trace_folder(trace_dir)
    store.set_sweep_job_node(job.key, node)
    if run_id is None:
        shutil.rmtree(trace_dir, ignore_errors=True)
    return run_id


@dataclass(frozen=True)
class RemoteAnswer:
    """What a remote task or job (Ray, Slurm) sends back to the driver, pickled: the measurement,
    its traces as bytes by file name, and where it ran (host, and the Ray node's id on Ray)."""

    result: OverheadResult
    traces: dict[str, bytes]
    node: str
    node_id: str | None = None


def measure_with_traces(job: SweepJob, command: str, prefix: str, node: str) -> RemoteAnswer:
    """What a remote task or job runs (Ray, Slurm): the job's measurement on the device it was given,
    checked to be the type asked for (GpuSelectionError otherwise), with its traces read back as
    bytes; ``node`` says where it ran."""
    import tempfile

    from detprof.gpus import select_device
    from detprof.runner.launcher import measure_overhead

    device = select_device(job.gpu)
    config = job.config(device)
    scratch = tempfile.mkdtemp(prefix=prefix)
    try:
        result = measure_overhead(config, device.kind, device.name, scratch, command=command)
        traces = {path.name: path.read_bytes() for path in Path(scratch).iterdir() if path.is_file()}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return RemoteAnswer(result, traces, node)


def store_remote_result(store: ResultStore, job: SweepJob, answer: RemoteAnswer) -> int | None:
    """Store what a remote task returned (``result``, ``traces``, ``node``): its traces written
    beside this store, the result pointing at them; returns the run id as store_job_result does."""
    from detprof.store.traces import trace_folder

    with trace_folder(store) as trace_dir:
        for name, data in answer.traces.items():
            (trace_dir / name).write_bytes(data)
        result = answer.result
        for outcome in result.jobs:  # the traces now live beside this store
            if outcome.trace_path:
                outcome.trace_path = str(trace_dir / Path(outcome.trace_path).name)
        result.trace_dir = str(trace_dir)
    return store_job_result(store, job, result, trace_dir, answer.node)
