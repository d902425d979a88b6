"""Sweeps on a real local Ray cluster (127.0.0.1): a head node and two nodes that declare a fake
GPU each (``accelerator_type:V100`` and ``accelerator_type:T4``), so that placement can be checked
with CPU-only jobs."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from detprof.cli import app
from detprof.store import ResultStore
from detprof.sweep import load_spec, plan_sweep

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[1]
CPU_SPEC = REPO / "benchmarks" / "sweep_cpu.toml"
runner = CliRunner()
# one worker runs this file under pytest-xdist: its module fixture (ray-cluster) is built once
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray-cluster")]

PLACED_SPEC = """\
name = "placed"
archs = ["small-cnn", "medium-cnn"]
kernel_sizes = [1]
gpus = ["v100", "t4"]
batch_size = 4
image_size = 64
steps = 3
warmup = 1
profile_steps = 1
repeats = 2
precision = 0
"""


@dataclass
class LocalCluster:
    address: str
    head: str
    v100: str
    t4: str


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    from ray.cluster_utils import Cluster

    started = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    v100 = started.add_node(num_cpus=2, num_gpus=1, resources={"accelerator_type:V100": 1})
    t4 = started.add_node(num_cpus=2, num_gpus=1, resources={"accelerator_type:T4": 1})
    started.wait_for_nodes()
    previous = os.environ.get("RAY_ADDRESS")
    os.environ["RAY_ADDRESS"] = started.address
    try:
        yield LocalCluster(started.address, started.head_node.node_id, v100.node_id, t4.node_id)
    finally:
        ray.shutdown()
        started.shutdown()
        if previous is None:
            os.environ.pop("RAY_ADDRESS", None)
        else:
            os.environ["RAY_ADDRESS"] = previous


def test_a_gpu_type_the_cluster_lacks_fails_at_submission_naming_what_it_has(cluster: LocalCluster,
                                                                            tmp_path: Path) -> None:
    spec = tmp_path / "a100.toml"
    spec.write_text('archs = ["small-cnn"]\ngpus = ["v100", "a100"]\n')
    started = time.perf_counter()
    result = runner.invoke(app, ["sweep", str(spec), "--cluster", "ray", "--db", str(tmp_path / "r.sqlite")])
    assert time.perf_counter() - started < 30
    assert result.exit_code == 2
    assert result.stderr.strip() == ("detprof: error: gpus: 'a100' (Ray accelerator_type A100) is on no node of the "
                                     "Ray cluster; it has: T4 (1 GPU), V100 (1 GPU)")
    assert not (tmp_path / "r.sqlite").exists()


def test_the_probe_lands_each_gpu_type_on_the_node_that_has_it(cluster: LocalCluster, tmp_path: Path) -> None:
    spec = tmp_path / "placed.toml"
    spec.write_text(PLACED_SPEC)
    result = runner.invoke(app, ["sweep", str(spec), "--cluster", "ray", "--probe", "--json"])
    assert result.exit_code == 0, result.stderr
    probes = {p["gpu"]: p for p in json.loads(result.stdout)["probes"]}
    assert probes["v100"]["node_id"] == cluster.v100 and probes["t4"]["node_id"] == cluster.t4
    assert probes["v100"]["cuda_visible_devices"] == "0"  # Ray gave the task the node's one GPU
    assert probes["v100"]["ok"] is None  # no NVML on these nodes: the GPU's name cannot be checked


def test_gpu_jobs_run_on_their_nodes_and_land_in_the_store_once(cluster: LocalCluster, tmp_path: Path) -> None:
    from detprof.sweep.ray_cluster import run_on_ray
    from detprof.sweep.run import SweepProgress, now_utc, owner_alive, owner_id

    def measure_on_this_cpu(job: Any, command: str) -> Any:
        # The nodes' GPUs are fake: measure on the CPU, where Ray placed the task.
        from dataclasses import replace

        from detprof.sweep.ray_cluster import measure_in_task

        return measure_in_task(replace(job, gpu="cpu"), command)

    spec = tmp_path / "placed.toml"
    spec.write_text(PLACED_SPEC)
    jobs = plan_sweep(load_spec(spec))
    db = tmp_path / "r.sqlite"
    done: list[str] = []
    with ResultStore(db, create=True) as store:
        for job in jobs:
            assert store.claim_sweep_job(job.key, "placed", job.label, job.identity(), owner_id(), False, owner_alive,
                                         now_utc()) == "claimed"
        run_on_ray(store, jobs, "test", SweepProgress(total=len(jobs)), None, lambda job: done.append(job.label),
                   task=measure_on_this_cpu)
        rows = store.sweep_jobs("placed").set_index("label")
    assert sorted(done) == sorted(j.label for j in jobs)
    for job in jobs:
        row = rows.loc[job.label]
        assert row["status"] == "done", row["error"]
        node = cluster.v100 if job.gpu == "v100" else cluster.t4
        assert f"Ray node {node[:12]}" in row["node"]
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*), COUNT(DISTINCT uid) FROM runs").fetchone() == (4, 4)
        traces = [r[0] for r in connection.execute("SELECT trace_path FROM jobs WHERE trace_path IS NOT NULL")]
    # 4 runs x 2 profiled pairs x 2: beside the store now, recorded relative to its folder
    assert len(traces) == 16 and all(not Path(t).is_absolute() and (db.parent / t).is_file()
                                    and (db.parent / t).parent.parent == tmp_path / "traces" for t in traces)


def test_the_cpu_spec_runs_through_ray_and_a_rerun_runs_nothing(cluster: LocalCluster, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    result = runner.invoke(app, ["sweep", str(CPU_SPEC), "--cluster", "ray", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["cluster"] == "ray" and document["counts"]["done"] == 3 and document["counts"]["ran_now"] == 3
    nodes = {cluster.head[:12], cluster.v100[:12], cluster.t4[:12]}
    assert all(any(f"Ray node {n}" in job["node"] for n in nodes) for job in document["jobs"])
    assert all(job["ratio"] is not None and job["device_name"] == "cpu" for job in document["jobs"])
    again = json.loads(runner.invoke(app, ["sweep", str(CPU_SPEC), "--cluster", "ray", "--db", str(db),
                                           "--json"]).stdout)
    assert again["counts"]["ran_now"] == 0
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 3
