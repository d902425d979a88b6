"""Sweep jobs as Ray tasks, placed on nodes by GPU type.

A GPU job asks Ray for ``num_gpus=1`` and ``accelerator_type`` (Ray's name for the spec's GPU
type: ``h100`` -> ``H100``, the name Ray itself gives a node from its NVML device name), so it
lands on a node with that GPU and never shares it with another timing job. A CPU job asks for
``CPU_JOB_CPUS`` CPUs: its measured thread and the process driving it. Inside the task the job
measures exactly as ``detprof overhead`` does and checks that the GPU it got is the type asked
for (node labels can be wrong); the task returns the measurement and its traces, and only the
driver writes the store. Tasks are never retried by Ray: a fault is recorded, and
``--rerun-failed`` decides.

Ray is an optional extra: ``pip install 'detprof[ray]'``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from detprof.documents import DOCUMENT_VERSION, ProbeDocument
from detprof.errors import DetprofError
from detprof.sweep.plan import SweepJob
from detprof.sweep.spec import SweepSpec

if TYPE_CHECKING:
    from detprof.store import ResultStore
    from detprof.sweep.jobs import ProgressCallback, RemoteAnswer, SweepProgress

CPU_JOB_CPUS = 2
ACCELERATOR_PREFIX = "accelerator_type:"
INSTALL_HINT = "pip install 'detprof[ray]'"


class ClusterError(DetprofError):
    """The Ray cluster cannot run the sweep: Ray missing, unreachable, or without the GPU types asked for."""


def ray_accelerator_type(gpu: str) -> str:
    """Ray's accelerator type for a detprof GPU alias: Ray names a node's GPU by the model token
    of its NVML name in capitals (``Tesla V100-SXM2-16GB`` -> ``V100``), which is the alias upper-cased."""
    return gpu.upper()


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError(f"--cluster needs Ray, which is not installed; install it with: {INSTALL_HINT}") from None
    return ray


CLIENT_PORT = 10001  # Ray Client's port when an address gives none
REACH_TIMEOUT_S = 5.0


def client_endpoint(address: str) -> tuple[str, int]:
    """(host, port) of a ``ray://HOST[:PORT]`` address; ArgumentError naming it when it has no host
    or its port is not one."""
    from detprof.errors import require
    from detprof.parse import whole_number

    rest = address.removeprefix("ray://").rstrip("/")
    host, _, port_text = rest.rpartition(":") if ":" in rest else (rest, "", str(CLIENT_PORT))
    port = whole_number(port_text)
    require(bool(host) and "/" not in host and port is not None and 1 <= port <= 65535,
            f"--cluster {address!r} is not accepted; give a Ray Client address as ray://HOST:PORT, e.g. "
            f"ray://head-node:{CLIENT_PORT}")
    assert port is not None
    return host, port


def require_reachable(address: str) -> None:
    """Raise ClusterError in seconds when nothing answers at a ``ray://`` address (Ray Client would
    retry for most of a minute, printing gRPC's messages, before it gave up)."""
    import socket

    host, port = client_endpoint(address)
    try:
        socket.create_connection((host, port), timeout=REACH_TIMEOUT_S).close()
    except OSError as error:
        raise ClusterError(f"--cluster {address!r}: nothing answers at {host}:{port} ({error.strerror or error}); "
                           "is the Ray head node running, with Ray Client on that port?") from None


def require_ray_client(cluster: str) -> None:
    """Raise ClusterError when Ray Client (``ray[client]``, which brings grpcio) is not installed:
    a ``ray://`` address connects through it, and Ray's own error for it is a traceback."""
    try:
        import grpc  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        raise ClusterError(f"--cluster {cluster!r} connects through Ray Client, which needs grpcio; install it with: "
                           f"{INSTALL_HINT} (it includes ray[client])") from None


def connect(cluster: str, spec: SweepSpec) -> None:
    """Join the cluster (``ray``: $RAY_ADDRESS, or a new local Ray; ``ray://HOST:PORT``: that
    cluster through Ray Client) and check that it has what the spec asks for; raises
    ClusterError naming what the cluster has, in seconds, before anything is submitted."""
    ray = _ray()
    address = os.environ.get("RAY_ADDRESS") if cluster == "ray" else cluster
    if address and address.startswith("ray://"):
        require_ray_client(cluster)
        require_reachable(address)
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False, include_dashboard=False, logging_level="ERROR",
                     configure_logging=True)
        except Exception as error:  # ConnectionError, or Ray's own errors for a bad address
            raise ClusterError(f"--cluster {cluster!r}: cannot reach Ray at {address or 'a new local instance'}: "
                               f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    check_cluster(spec)


def cluster_inventory() -> dict[str, Any]:
    """The live nodes of the connected cluster: GPU types (Ray's names) with GPU counts, and the
    most CPUs on one node."""
    ray = _ray()
    types: dict[str, float] = {}
    max_cpus = 0.0
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        max_cpus = max(max_cpus, resources.get("CPU", 0.0))
        for key in resources:
            if key.startswith(ACCELERATOR_PREFIX):
                name = key[len(ACCELERATOR_PREFIX):]
                types[name] = types.get(name, 0.0) + resources.get("GPU", 0.0)
    return {"gpu_types": types, "max_cpus_per_node": max_cpus}


def check_cluster(spec: SweepSpec) -> None:
    """Raise ClusterError unless every GPU type of the spec is on a live node with a GPU (or, for
    ``cpu``, some node has CPU_JOB_CPUS CPUs)."""
    inventory = cluster_inventory()
    have = {name: count for name, count in inventory["gpu_types"].items() if count >= 1}
    listed = ", ".join(f"{name} ({count:g} GPU)" for name, count in sorted(have.items())) or "no GPUs"
    for gpu in spec.gpus:
        if gpu == "cpu":
            if inventory["max_cpus_per_node"] < CPU_JOB_CPUS:
                raise ClusterError(f"gpus = [\"cpu\"]: no node of the Ray cluster has {CPU_JOB_CPUS} CPUs for a CPU "
                                   f"job (the largest has {inventory['max_cpus_per_node']:g})")
            continue
        if ray_accelerator_type(gpu) not in have:
            raise ClusterError(f"gpus: {gpu!r} (Ray accelerator_type {ray_accelerator_type(gpu)}) is on no node of the "
                               f"Ray cluster; it has: {listed}")


def task_options(gpu: str) -> dict[str, Any]:
    """Ray task options of a job on GPU type ``gpu``: one whole GPU of that type, or CPU_JOB_CPUS
    CPUs for ``cpu``; no retries."""
    if gpu == "cpu":
        return {"num_cpus": CPU_JOB_CPUS, "num_gpus": 0, "max_retries": 0}
    return {"num_gpus": 1, "num_cpus": 1, "accelerator_type": ray_accelerator_type(gpu), "max_retries": 0}


def node_description() -> str:
    """Where this code runs: ``hostname (Ray node <id>)``, or the host name outside Ray."""
    import socket

    try:
        import ray

        node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # not inside Ray
        node_id = None
    return f"{socket.gethostname()} (Ray node {node_id[:12]})" if node_id else socket.gethostname()


def measure_in_task(job: SweepJob, command: str) -> RemoteAnswer:
    """What a Ray task runs: the job's measurement on the device Ray gave it (``CUDA_VISIBLE_DEVICES``
    set by Ray), with its traces read back as bytes. Returns result, traces, node, node_id."""
    from dataclasses import replace

    import ray

    from detprof.sweep.jobs import measure_with_traces

    answer = measure_with_traces(job, command, "detprof-ray-", node_description())
    return replace(answer, node_id=ray.get_runtime_context().get_node_id())


def _failure(error: BaseException) -> str:
    """One line for a task that raised or died: the cause inside the task when Ray has it."""
    from detprof.sweep.jobs import one_line

    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return one_line(cause)
    return one_line(error)


def run_on_ray(store: ResultStore, jobs: list[SweepJob], command: str, progress: SweepProgress,
               on_progress: ProgressCallback | None, finished: Callable[[SweepJob], None],
               task: Callable[[SweepJob, str], RemoteAnswer] = measure_in_task) -> None:
    """Submit every job as a task, store each result as it arrives (here, in the driver) and
    record failures; Ctrl-C cancels what is still running. ``task`` is what each task runs."""
    from detprof.sweep.jobs import now_utc, store_remote_result

    ray = _ray()
    remote = ray.remote(task)
    pending = {remote.options(**task_options(job.gpu)).remote(job, command): job for job in jobs}
    progress.running = [job.label for job in jobs]
    if on_progress:
        on_progress(progress)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                answer = ray.get(ready[0])
            except Exception as error:  # RayTaskError, WorkerCrashedError, OutOfMemoryError, NodeDiedError
                store.fail_sweep_job(job.key, _failure(error), None, now_utc())
                finished(job)
                continue
            store_remote_result(store, job, answer)
            finished(job)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def probe_in_task(gpu: str) -> dict[str, Any]:
    """What a placement probe runs: where it landed and which GPUs it was given (no measurement)."""
    import ray

    from detprof.gpus import list_gpus

    visible = [g.name for g in list_gpus()]
    return {"gpu": gpu, "node": node_description(), "node_id": ray.get_runtime_context().get_node_id(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "gpus_seen": visible}


def probe_document(spec: SweepSpec, cluster: str) -> ProbeDocument:
    """What ``sweep --probe --json`` prints: ``probes``, one per GPU type (see probe_placement)."""
    return {"document_version": DOCUMENT_VERSION, "probes": probe_placement(spec, cluster)}


def probe_placement(spec: SweepSpec, cluster: str) -> list[dict[str, Any]]:
    """One task per GPU type of the spec, placed as its jobs would be, reporting the node it ran on,
    ``CUDA_VISIBLE_DEVICES`` and the GPU names it sees, and whether they match the type (``ok``;
    None on a node without NVML). Checks a cluster's labels in seconds before GPU hours go in."""
    from detprof.gpus import matches_alias

    connect(cluster, spec)
    ray = _ray()
    remote = ray.remote(probe_in_task)
    refs = [remote.options(**task_options(gpu)).remote(gpu) for gpu in spec.gpus]
    rows = ray.get(refs)
    for row in rows:
        seen = row["gpus_seen"]
        row["ok"] = True if row["gpu"] == "cpu" else (
            bool(seen) and all(matches_alias(row["gpu"], name) for name in seen) if seen else None)
    return rows
