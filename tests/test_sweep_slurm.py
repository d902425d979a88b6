"""Sweeps as Slurm jobs through submitit: the path is run with submitit's local executor
(``--cluster slurm-local``), the job parameters a Slurm site gets are checked as built, and the
options are refused in one line where they cannot apply."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detprof.cli import app
from detprof.sweep.slurm_cluster import SlurmOptions, job_parameters

runner = CliRunner()
needs_submitit = pytest.mark.skipif(importlib.util.find_spec("submitit") is None, reason="needs submitit")
SPEC = """name = "slurm-cpu"
archs = ["small-cnn", "medium-cnn"]
kernel_sizes = [1]
modes = ["default", "deterministic"]
gpus = ["cpu"]
batch_size = 4
image_size = 64
steps = 3
warmup = 1
profile_steps = 1
repeats = 2
"""


@pytest.mark.slow
@needs_submitit
def test_a_cpu_spec_runs_as_submitit_jobs_the_driver_stores_them_and_a_rerun_runs_nothing(tmp_path: Path) -> None:
    spec, db, folder = tmp_path / "slurm.toml", tmp_path / "s.sqlite", tmp_path / "submitit"
    spec.write_text(SPEC)
    args = ["sweep", str(spec), "--cluster", "slurm-local", "--slurm-folder", str(folder), "--db", str(db), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["cluster"] == "slurm-local" and document["counts"]["done"] == 2
    assert document["counts"]["ran_now"] == 2
    assert all("(Slurm job " in job["node"] and job["ratio"] is not None for job in document["jobs"])
    assert len(list(folder.glob("*_log.err"))) == 2  # each job ran in submitit's own process, its logs kept
    with sqlite3.connect(db) as connection:  # the driver stored both, traces beside its store
        assert connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
        traces = [r[0] for r in connection.execute("SELECT trace_path FROM jobs WHERE trace_path IS NOT NULL")]
    assert traces and all(Path(t).is_file() and tmp_path in Path(t).parents for t in traces)
    again = json.loads(runner.invoke(app, args).stdout)
    assert again["counts"]["ran_now"] == 0 and again["counts"]["done"] == 2  # resumable, as a local sweep


def test_a_gpu_job_asks_slurm_for_its_gpu_type_and_passes_the_site_options_through() -> None:
    options = SlurmOptions(partition="gpu", account="lab", time_min=90, gpus_per_job=2,
                           constraints={"v100": "volta32gb"}, extra={"qos": "high"})
    parameters = job_parameters("v100", options)
    assert parameters["slurm_constraint"] == "volta32gb" and parameters["gpus_per_node"] == 2
    assert parameters["slurm_partition"] == "gpu" and parameters["slurm_account"] == "lab"
    assert parameters["timeout_min"] == 90 and parameters["slurm_additional_parameters"] == {"qos": "high"}
    assert job_parameters("a100", options)["slurm_constraint"] == "a100"  # unmapped: the alias itself
    cpu = job_parameters("cpu", SlurmOptions())  # control: a CPU job asks for no GPU and no constraint
    assert "gpus_per_node" not in cpu and "slurm_constraint" not in cpu and "slurm_partition" not in cpu


@pytest.mark.parametrize(("args", "message"), [
    (["--cluster", "slurm"], "--cluster slurm submits with sbatch, which is not on this machine's PATH"),
    (["--slurm-partition", "gpu"], "--slurm-partition go with --cluster slurm or slurm-local"),
    (["--cluster", "slurm-local", "--slurm-time", "0"], "--slurm-time 0 is not accepted; use minutes from 1"),
    (["--cluster", "slurm-local", "--slurm-option", "qos"], "--slurm-option 'qos' is not accepted; use NAME=VALUE"),
    (["--cluster", "slurm-local", "--slurm-account", "a b"], "--slurm-account 'a b' is not accepted"),
    (["--cluster", "slurmm"], "--cluster 'slurmm' is not accepted; use ray"),
])
@needs_submitit
def test_slurm_options_that_cannot_apply_exit_2_in_one_line(args: list[str], message: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here, whatever the machine has
    spec = tmp_path / "slurm.toml"
    spec.write_text(SPEC)
    result = runner.invoke(app, ["sweep", str(spec), *args, "--db", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.sqlite").exists()  # refused before the store was made
