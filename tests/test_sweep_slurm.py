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
    assert traces and all(not Path(t).is_absolute() and (db.parent / t).is_file() for t in traces)
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
    (["--cluster", "slurm-local", "--slurm-account", "lab\nrm -rf /"], "--slurm-account 'lab\\nrm -rf /' is not"),
    (["--cluster", "slurm-local", "--slurm-option", "qos=high\necho owned"], "--slurm-option qos='high\\necho"),
    (["--cluster", "slurm-local", "--slurm-option", "q s=high"], "--slurm-option 'q s' is not accepted"),
    (["--cluster", "slurm-local", "--slurm-constraint", "v100=volta\nid"], "--slurm-constraint v100='volta\\nid'"),
    (["--cluster", "slurm-local", "--slurm-partition", "gpu\n"], "--slurm-partition 'gpu\\n' is not accepted"),
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


# Stand-ins for Slurm's commands: sbatch records what it is given and runs the job script in the
# background, as one node would; srun runs its command; sacct says a job is done once it is; scancel
# and squeue do nothing.
SBATCH = """#!/bin/bash
n=$(( $(cat "$FAKE_SLURM/next" 2>/dev/null || echo 100) + 1 )); echo $n > "$FAKE_SLURM/next"
printf '%s\\n' "$@" > "$FAKE_SLURM/sbatch-$n.args"
cp "$1" "$FAKE_SLURM/job-$n.sh"
( SLURM_JOB_ID=$n SLURM_PROCID=0 SLURM_LOCALID=0 SLURM_NTASKS=1 SLURM_NODEID=0 SLURM_JOB_NUM_NODES=1 \\
  SLURM_JOB_NODELIST=localhost bash "$1"; touch "$FAKE_SLURM/done-$n" ) > "$FAKE_SLURM/job-$n.out" 2>&1 < /dev/null &
echo "Submitted batch job $n"
"""
SRUN = """#!/usr/bin/env python3
import os, sys
args = sys.argv[1:]
while args and args[0].startswith("--"):
    args = args[2:] if args[0] in ("--output", "--error") else args[1:]
os.execvp(args[0], args)
"""
SACCT = """#!/bin/bash
echo "JobID|State|NodeList"
while [ $# -gt 0 ]; do
  if [ "$1" = "-j" ]; then
    if [ -e "$FAKE_SLURM/done-$2" ]; then echo "$2|COMPLETED|localhost"; else echo "$2|RUNNING|localhost"; fi
    shift
  fi
  shift
done
"""


def _stand_in_slurm(folder: Path) -> Path:
    bin_folder = folder / "bin"
    bin_folder.mkdir()
    for name, text in (("sbatch", SBATCH), ("srun", SRUN), ("sacct", SACCT), ("scancel", "#!/bin/sh\n"),
                       ("squeue", "#!/bin/sh\n")):
        (bin_folder / name).write_text(text)
        (bin_folder / name).chmod(0o755)
    return bin_folder


@pytest.mark.slow
@needs_submitit
def test_a_slurm_sweep_reaches_sbatch_with_exactly_the_values_given_and_its_results_come_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    records = tmp_path / "slurm"
    records.mkdir()
    monkeypatch.setenv("FAKE_SLURM", str(records))
    monkeypatch.setenv("PATH", f"{_stand_in_slurm(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    one_arch = SPEC.replace('archs = ["small-cnn", "medium-cnn"]', 'archs = ["small-cnn"]').replace(
        "kernel_sizes = [1]\n", "")
    spec, db = tmp_path / "slurm.toml", tmp_path / "s.sqlite"
    # A GPU type: every site option reaches the job's script as given
    spec.write_text(one_arch.replace('gpus = ["cpu"]', 'gpus = ["v100"]'))
    result = runner.invoke(app, ["sweep", str(spec), "--cluster", "slurm", "--slurm-partition", "gpu",
                                 "--slurm-account", "lab", "--slurm-time", "90", "--slurm-constraint",
                                 "v100=volta32gb&ib", "--slurm-option", "qos=high", "--slurm-folder",
                                 str(tmp_path / "submitit"), "--db", str(db), "--json"])
    [arguments] = [path.read_text().split() for path in records.glob("sbatch-*.args")]  # one job, sbatch SCRIPT
    [script] = [path.read_text() for path in records.glob("job-*.sh")]
    assert len(arguments) == 1 and arguments[0].endswith(".sh")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --time=90", "#SBATCH --qos=high",
                 "#SBATCH --constraint='volta32gb&ib'", "#SBATCH --gpus-per-node=1"):
        assert line in script, script
    # the job ran on a "node" without a v100 and says so, instead of measuring another device
    [job] = json.loads(result.stdout)["jobs"]
    assert result.exit_code == 1 and job["status"] == "failed" and "v100" in job["error"], (result.stderr, job)
    # A CPU spec: the job measures, and its result comes back to the driver, which stores it
    spec.write_text(one_arch)
    result = runner.invoke(app, ["sweep", str(spec), "--cluster", "slurm", "--slurm-partition", "cpu",
                                 "--slurm-folder", str(tmp_path / "submitit"), "--db", str(tmp_path / "c.sqlite"),
                                 "--json"])
    assert result.exit_code == 0, result.stderr
    [job] = json.loads(result.stdout)["jobs"]
    assert job["status"] == "done" and job["ratio"] is not None and "(Slurm job 102)" in job["node"], job
    cpu_script = (records / "job-102.sh").read_text()
    assert "#SBATCH --partition=cpu" in cpu_script and "--gpus-per-node" not in cpu_script
