"""Sweeps: spec validation, resumable runs that survive killed workers and drivers, two sweeps
on one store, ``db merge`` / ``db export``, and the report from a merged store. The Ray tests are
in tests/test_sweep_ray.py."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detprof.cli import app
from detprof.store import ResultStore
from detprof.sweep import SpecError, load_spec, parse_spec, plan_sweep
from tests.procfs import PARENT, processes

# one worker runs this file under pytest-xdist: its module fixtures (sweep-store) are built once
pytestmark = pytest.mark.xdist_group("sweep-store")

REPO = Path(__file__).resolve().parents[1]
CPU_SPEC = REPO / "benchmarks" / "sweep_cpu.toml"
runner = CliRunner()

# A sweep whose jobs take about a second each: three distinct configurations.
QUICK_SPEC = """\
name = "quick"
archs = ["small-cnn", "medium-cnn"]
kernel_sizes = [1, 3]
gpus = ["cpu"]
batch_size = 4
image_size = 64
steps = {steps}
warmup = 1
profile_steps = 0
repeats = 2
"""


def quick_spec(folder: Path, steps: int = 3) -> Path:
    path = folder / "quick.toml"
    path.write_text(QUICK_SPEC.format(steps=steps))
    return path


def detprof_process(*args: str) -> subprocess.Popen[str]:
    """`detprof ...` as a separate process (its own session, so that its workers can be found)."""
    return subprocess.Popen([sys.executable, "-m", "detprof.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True)


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    return processes(PARENT, pid)


def stored(db: Path) -> dict[str, object]:
    """What the store holds: sweep job rows, runs, and orphans (rows of runs that do not exist)."""
    with sqlite3.connect(db) as connection:
        jobs = connection.execute("SELECT job_key, status, run_id, error FROM sweep_jobs ORDER BY rowid").fetchall()
        runs = [r[0] for r in connection.execute("SELECT id FROM runs")]
        orphans = connection.execute("SELECT COUNT(*) FROM jobs WHERE run_id NOT IN (SELECT id FROM runs)").fetchone()
    return {"jobs": jobs, "runs": runs, "orphans": orphans[0]}


def done_jobs_so_far(db: Path) -> int:
    """How many sweep jobs a running driver has finished; 0 until its store has the sweep table.

    SQLite creates the file on connect, a moment before the driver's schema exists, so a poll
    can see a file without tables.
    """
    if not db.exists():
        return 0
    with sqlite3.connect(db) as connection:
        has_table = connection.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'sweep_jobs'").fetchone()[0]
        if not has_table:
            return 0
        return int(connection.execute("SELECT COUNT(*) FROM sweep_jobs WHERE status = 'done'").fetchone()[0])


def assert_every_job_once(db: Path, expected: int) -> None:
    state = stored(db)
    jobs = state["jobs"]
    assert len(jobs) == expected and all(status == "done" for _, status, _, _ in jobs), jobs  # type: ignore[misc]
    run_ids = [run_id for _, _, run_id, _ in jobs]  # type: ignore[misc]
    assert sorted(run_ids) == sorted(state["runs"]) and len(set(run_ids)) == expected  # type: ignore[arg-type]
    assert state["orphans"] == 0


# -- the spec --------------------------------------------------------------------------------------


def test_shipped_specs_plan_the_papers_sweeps() -> None:
    figure9a = plan_sweep(load_spec(REPO / "benchmarks" / "figure9a.toml"))
    assert [j.arch for j in figure9a] == ["vgg16", "vgg19", "resnet50", "resnet152", "densenet121", "densenet201",
                                          "mobilenet", "mobilenet-v2", "efficientnet-b0", "inception-v3"]
    workloads = {j.arch: j.identity()["workload"] for j in figure9a}
    assert workloads["vgg19"]["image_size"] == 224 and workloads["vgg19"]["batch_size"] == 64
    assert workloads["inception-v3"]["image_size"] == 299  # its own input, as the zoo says
    figure9b = plan_sweep(load_spec(REPO / "benchmarks" / "figure9b.toml"))
    assert [j.kernel_size for j in figure9b] == [1, 2, 3, 4, 5, 6, 7]
    assert len({j.key for j in figure9a + figure9b}) == 17


def test_a_job_is_matched_on_its_configuration_not_on_the_spec_it_came_from(tmp_path: Path) -> None:
    one = plan_sweep(parse_spec('name = "a"\narchs = ["small-cnn"]\ngpus = ["cpu"]\nbatch_size = 8\n'))
    two = plan_sweep(parse_spec('name = "b"\narchs = ["small-cnn"]\ngpus = ["cpu"]\nbatch_size = 8\nsteps = 6\n'))
    other = plan_sweep(parse_spec('name = "c"\narchs = ["small-cnn"]\ngpus = ["cpu"]\nbatch_size = 16\n'))
    assert one[0].key == two[0].key  # steps = 6 is the CPU default: the same configuration
    assert one[0].key != other[0].key
    three = plan_sweep(parse_spec('archs = ["small-cnn"]\ngpus = ["cpu"]\nmodes = ["default", "deterministic", '
                                  '"deterministic-algorithms"]\n'))
    assert [j.modes for j in three] == [("default", "deterministic"), ("default", "deterministic-algorithms")]


@pytest.mark.parametrize(("text", "message"), [
    ('archs = ["small-cnn"]\ngpus = ["cpu"]\nkernel_size = 3\n',
     r"spec.toml:3: unknown key 'kernel_size'; accepted keys: name, description, framework, archs, workloads, "
     r"kernel_sizes"),
    ('archs = ["vgg99"]\ngpus = ["cpu"]\n', r"spec.toml:1: archs = \['vgg99'\] is not accepted \('vgg99' is unknown\); "
                                            r"use a list of zoo archs \(vgg16, "),
    ('archs = ["vgg19"]\nmodes = ["default", "turbo"]\ngpus = ["cpu"]\n',
     r"spec.toml:2: modes = \['default', 'turbo'\] is not accepted \('turbo' is unknown\)"),
    ('archs = ["vgg19"]\ngpus = ["cpu"]\nbatch_size = "64"\n',
     r'spec.toml:3: batch_size = "64" is not accepted; use an integer from 1 to 65,536'),
    ('archs = ["medium-cnn"]\nkernel_sizes = [3, 9]\ngpus = ["cpu"]\n',
     r"spec.toml:2: kernel_sizes = \[3, 9\] is not accepted \(9 is unknown\); use a list of kernel sizes 1 to 7"),
    ('archs = ["vgg19"]\nkernel_sizes = [3]\ngpus = ["cpu"]\n', r"spec.toml:2: kernel_sizes apply to medium-cnn only"),
    ('archs = ["vgg19"]\n', r"spec.toml: the key 'gpus' is missing; use a list of GPU types"),
    ('gpus = ["cpu"]\n', r"spec.toml: the key 'archs' is missing; use a list of zoo archs .* \(or workloads, a list "
                         r"of your own training steps"),
    ('workloads = ["examples/nothing.py:build"]\ngpus = ["cpu"]\n',
     r"spec.toml: job examples/nothing.py:build on cpu: deterministic/default: --workload 'examples/nothing.py': "
     r"no such file"),
    ('archs = ["vgg19"]\ngpus = ["cpu", "h100"]\n', r"spec.toml:2: gpus mixes \"cpu\" with GPU types"),
    ('archs = ["vgg19"]\ngpus = ["z9000"]\n', r"spec.toml:2: gpus = \['z9000'\] is not accepted"),
    ('archs = ["vgg19"]\ngpus = ["cpu"]\nprecision = 1.5\n', r"spec.toml:3: precision = 1.5 is not accepted"),
    ('archs = ["vgg19"]\ngpus = ["cpu"]\nmodes = ["default"]\n', r"spec.toml:3: modes = \['default'\] is not accepted"),
    ('archs = ["vgg19"\ngpus = ["cpu"]\n', r"spec.toml: not valid TOML: .*line"),
    ('archs = ["medium-cnn"]\ngpus = ["cpu"]\nimage_size = 32\n',
     r"spec.toml: job medium-cnn k=3 on cpu: deterministic/default: --image-size 32 is too small for medium-cnn"),
])
def test_a_bad_spec_exits_2_naming_key_and_line_before_anything_runs(text: str, message: str, tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    with pytest.raises(SpecError):
        plan_sweep(load_spec(spec))
    result = runner.invoke(app, ["sweep", str(spec), "--db", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and __import__("re").search(message, lines[0]), result.stderr
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["sweep", "nope.toml"], r"sweep spec 'nope.toml' does not exist"),
    (["sweep", str(CPU_SPEC), "--cluster", "pbs"], r"--cluster 'pbs' is not accepted; use ray"),
    (["sweep", str(CPU_SPEC), "--probe"], r"--probe checks placement on a Ray cluster; add --cluster ray"),
    (["db", "merge", "missing.sqlite"], r"db merge: 'missing.sqlite' is not a file"),
    (["db", "export", "--format", "xml"], r"--format 'xml' is not accepted; use csv or json"),
])
def test_bad_sweep_and_db_arguments_exit_2_in_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    if args[:2] == ["db", "export"]:
        ResultStore(db, create=True).close()
    result = runner.invoke(app, [*args, "--db", str(db)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and __import__("re").search(message, lines[0]), result.stderr


def test_a_local_sweep_for_a_gpu_this_machine_lacks_exits_2(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = runner.invoke(app, ["sweep", str(REPO / "benchmarks" / "figure9b.toml"), "--db", str(tmp_path / "r.db")])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("detprof: error: GPU 'h100' is not on this machine; available: cpu")
    assert not (tmp_path / "r.db").exists()


# -- running, resuming, storing ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cpu_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """The CI spec, run once through the command line: its store and JSON document."""
    db = tmp_path_factory.mktemp("sweep") / "cpu.sqlite"
    result = runner.invoke(app, ["sweep", str(CPU_SPEC), "--db", str(db), "--json"])
    assert result.exit_code == 0, result.stderr
    return db, json.loads(result.stdout)


@pytest.mark.slow
def test_the_cpu_spec_runs_every_job_and_runs_shows_each_configuration(cpu_sweep: tuple[Path, dict]) -> None:
    db, document = cpu_sweep
    assert document["counts"] == {"done": 3, "failed": 0, "running": 0, "left": 0, "ran_now": 3}
    for job in document["jobs"]:
        assert job["status"] == "done" and job["ran"] and job["device_name"] == "cpu"
        low, high = job["ratio_ci"]
        assert low <= job["ratio"] <= high and job["kernel_ratio"] > 0
    assert_every_job_once(db, 3)
    listed = json.loads(runner.invoke(app, ["runs", "--db", str(db), "--json"]).stdout)["runs"]
    seen = {(r["arch"], r["kernel_size"], r["batch_size"], r["image_size"], r["modes"], r["device"], r["sweep"])
            for r in listed}
    assert seen == {("small-cnn", None, 8, 64, "default,deterministic", "cpu", "sweep-cpu"),
                    ("medium-cnn", 1, 8, 64, "default,deterministic", "cpu", "sweep-cpu"),
                    ("medium-cnn", 3, 8, 64, "default,deterministic", "cpu", "sweep-cpu")}
    assert all(r["config"]["protocol"]["timed_steps"] == 5 and r["config"]["sweep"]["job_key"] for r in listed)


@pytest.mark.slow
def test_running_the_spec_again_runs_nothing(cpu_sweep: tuple[Path, dict]) -> None:
    db, first = cpu_sweep
    again = runner.invoke(app, ["sweep", str(CPU_SPEC), "--db", str(db), "--json"])
    assert again.exit_code == 0, again.stderr
    document = json.loads(again.stdout)
    assert document["counts"]["ran_now"] == 0 and document["counts"]["done"] == 3
    assert [j["run_id"] for j in document["jobs"]] == [j["run_id"] for j in first["jobs"]]  # type: ignore[index]
    assert_every_job_once(db, 3)
    status = runner.invoke(app, ["sweep", str(CPU_SPEC), "--db", str(db), "--status"])
    assert status.exit_code == 0 and "3 done, 0 failed, 0 left; 0 run now" in status.stdout


@pytest.mark.slow
def test_a_killed_worker_fails_only_its_job_and_a_rerun_repeats_only_it(tmp_path: Path) -> None:
    db, spec = tmp_path / "r.sqlite", quick_spec(tmp_path)
    sweep = detprof_process("sweep", str(spec), "--db", str(db), "--json")
    victim = None
    deadline = time.time() + 60
    while victim is None and time.time() < deadline and sweep.poll() is None:
        servers = children(sweep.pid)  # the fork server; its children are the job processes
        workers = [w for server in servers for w in children(server)]
        if workers:
            victim = workers[0]
            os.kill(victim, signal.SIGKILL)
        time.sleep(0.01)
    out, err = sweep.communicate(timeout=300)
    assert victim is not None, "no worker process was seen"
    assert sweep.returncode == 1, err
    document = json.loads(out)
    failed = [j for j in document["jobs"] if j["status"] == "failed"]
    assert len(failed) == 1 and document["counts"]["done"] == 2
    assert "killed by signal 9 (SIGKILL)" in failed[0]["error"]
    assert "--rerun-failed` runs them again" in err
    kept = runner.invoke(app, ["sweep", str(spec), "--db", str(db), "--json"])  # a plain resume keeps the failure
    assert kept.exit_code == 1 and json.loads(kept.stdout)["counts"]["ran_now"] == 0
    retried = runner.invoke(app, ["sweep", str(spec), "--db", str(db), "--json", "--rerun-failed"])
    assert retried.exit_code == 0, retried.stderr
    document = json.loads(retried.stdout)
    assert document["counts"]["ran_now"] == 1 and [j["label"] for j in document["jobs"] if j["ran"]] == \
        [failed[0]["label"]]
    assert_every_job_once(db, 3)


@pytest.mark.slow
def test_a_driver_killed_mid_sweep_resumes_with_every_job_exactly_once(tmp_path: Path) -> None:
    db, spec = tmp_path / "r.sqlite", quick_spec(tmp_path, steps=20)
    sweep = detprof_process("sweep", str(spec), "--db", str(db), "--json")
    deadline = time.time() + 120
    while time.time() < deadline and sweep.poll() is None:
        if done_jobs_so_far(db) >= 1:
            break
        time.sleep(0.05)
    assert sweep.poll() is None, "the sweep ended before it could be killed"
    os.kill(sweep.pid, signal.SIGKILL)  # the driver only; its workers notice and end
    sweep.communicate(timeout=30)
    before = stored(db)
    assert 1 <= sum(s == "done" for _, s, _, _ in before["jobs"]) < 3  # type: ignore[union-attr]
    resumed = runner.invoke(app, ["sweep", str(spec), "--db", str(db), "--json"])
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["counts"]["ran_now"] == 3 - sum(
        s == "done" for _, s, _, _ in before["jobs"])  # type: ignore[union-attr]
    assert_every_job_once(db, 3)
    traces = db.parent / "traces"
    assert not any(folder.joinpath(".measuring").exists() for folder in traces.iterdir())  # none abandoned


@pytest.mark.slow
def test_two_sweeps_of_one_spec_on_one_store_share_the_jobs_without_loss_or_duplicates(tmp_path: Path) -> None:
    db, spec = tmp_path / "r.sqlite", quick_spec(tmp_path)
    sweeps = [detprof_process("sweep", str(spec), "--db", str(db), "--json") for _ in range(2)]
    documents = []
    for sweep in sweeps:
        out, err = sweep.communicate(timeout=300)
        assert sweep.returncode == 0, err
        documents.append(json.loads(out))
    assert sum(d["counts"]["ran_now"] for d in documents) == 3
    assert_every_job_once(db, 3)
    with ResultStore(db) as store:
        assert store.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- merge, export, report -----------------------------------------------------------------------------


@pytest.mark.slow
def test_merging_another_store_twice_adds_its_runs_once_and_the_report_draws_both(
        cpu_sweep: tuple[Path, dict], tmp_path: Path) -> None:
    from detprof.report.collect import collect

    ours, _ = cpu_sweep
    theirs = tmp_path / "other-box.sqlite"
    other_spec = tmp_path / "k5.toml"
    other_spec.write_text(CPU_SPEC.read_text().replace('archs = ["small-cnn", "medium-cnn"]', 'archs = ["medium-cnn"]')
                          .replace("kernel_sizes = [1, 3]", "kernel_sizes = [3, 5]"))
    made = runner.invoke(app, ["sweep", str(other_spec), "--db", str(theirs), "--json"])
    assert made.exit_code == 0, made.stderr
    merged = tmp_path / "lab" / "lab.sqlite"  # a store in a folder of its own, as on another machine
    first = json.loads(runner.invoke(app, ["db", "merge", str(ours), "--db", str(merged), "--json"]).stdout)
    assert first["runs_added"] == 3 and first["sweep_jobs_added"] == 3
    second = json.loads(runner.invoke(app, ["db", "merge", str(theirs), "--db", str(merged), "--json"]).stdout)
    # medium-cnn k=3 is the same configuration in both specs: done here already, so only k=5 is added
    # 2 runs x 3 profiled pairs x 2 jobs' traces
    assert second["runs_added"] == 2 and second["sweep_jobs_added"] == 1 and second["files_copied"] == 12
    with sqlite3.connect(merged) as connection:
        before = [connection.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("runs", "jobs", "steps", "kernels", "sweep_jobs")]
    again = json.loads(runner.invoke(app, ["db", "merge", str(theirs), "--db", str(merged), "--json"]).stdout)
    assert again["runs_added"] == 0 and again["runs_present"] == 2 and again["sweep_jobs_added"] == 0
    with sqlite3.connect(merged) as connection:
        after = [connection.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                 for t in ("runs", "jobs", "steps", "kernels", "sweep_jobs")]
    assert after == before and before[0] == 5
    with sqlite3.connect(merged) as connection:
        traces = [Path(r[0]) for r in connection.execute("SELECT trace_path FROM jobs WHERE trace_path IS NOT NULL")]
    # recorded relative to the merged store's folder, so that it can move again
    assert len(traces) == 30 and all(not t.is_absolute() and (merged.parent / t).is_file() for t in traces)
    # medium-cnn k=3 is in both stores as separate measurements: both are kept (different uids)
    overhead = collect(merged).overhead
    assert sorted(overhead[overhead.arch == "medium-cnn"].kernel_size.tolist()) == [1, 3, 3, 5]
    # the merged sweep jobs make the spec complete here: nothing left to run
    status = runner.invoke(app, ["sweep", str(other_spec), "--db", str(merged), "--status", "--json"])
    assert json.loads(status.stdout)["counts"]["done"] == 2
    page = runner.invoke(app, ["report", "--db", str(merged), "--out", str(tmp_path / "lab.html"), "--json"])
    assert page.exit_code == 0, page.stderr
    sections = json.loads(page.stdout)["sections"]
    assert sections["figure_9a"] == "drawn" and sections["figure_9b"] == "drawn"
    kernels = runner.invoke(app, ["kernels", "--db", str(merged), "--json"])
    assert kernels.exit_code == 0, kernels.stderr


@pytest.mark.slow
def test_export_writes_every_run_as_csv_and_json(cpu_sweep: tuple[Path, dict], tmp_path: Path) -> None:
    import io

    import pandas as pd

    db, document = cpu_sweep
    csv = runner.invoke(app, ["db", "export", "--db", str(db)])
    assert csv.exit_code == 0, csv.stderr
    table = pd.read_csv(io.StringIO(csv.stdout))
    assert len(table) == 3 and set(table.kernel_size.dropna()) == {1, 3}
    ratios = {j["run_id"]: j["ratio"] for j in document["jobs"]}  # type: ignore[union-attr]
    assert all(abs(r.ratio - ratios[r.run_id]) < 1e-12 for r in table.itertuples())
    assert (table.ratio_ci_low <= table.ratio).all() and (table.baseline == "default").all()
    out = tmp_path / "runs.json"
    written = runner.invoke(app, ["db", "export", "--format", "json", "-o", str(out), "--db", str(db)])
    assert written.exit_code == 0 and written.stdout == ""
    runs = json.loads(out.read_text())["runs"]
    assert len(runs) == 3 and all(r["config"]["sweep"]["name"] == "sweep-cpu" and r["environment"] for r in runs)


def test_status_of_a_spec_with_nothing_stored_lists_every_job_as_left_and_creates_no_file(tmp_path: Path) -> None:
    db = tmp_path / "none" / "r.sqlite"
    result = runner.invoke(app, ["sweep", str(CPU_SPEC), "--status", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["counts"] == {"done": 0, "failed": 0, "running": 0, "left": 3, "ran_now": 0}
    assert [j["label"] for j in document["jobs"]] == ["small-cnn on cpu: deterministic/default",
                                                      "medium-cnn k=1 on cpu: deterministic/default",
                                                      "medium-cnn k=3 on cpu: deterministic/default"]
    assert not db.parent.exists()


def test_gpus_runs_a_spec_on_the_gpu_types_at_hand(tmp_path: Path) -> None:
    from detprof.sweep import with_gpus

    spec = with_gpus(load_spec(REPO / "benchmarks" / "figure9b.toml"), ("H200", " v100"))
    assert spec.gpus == ("h200", "v100") and len(plan_sweep(spec)) == 14
    status = runner.invoke(app, ["sweep", str(REPO / "benchmarks" / "figure9b.toml"), "--gpus", "cpu", "--status",
                                 "--db", str(tmp_path / "r.sqlite"), "--json"])
    assert status.exit_code == 0, status.stderr
    assert {j["gpu"] for j in json.loads(status.stdout)["jobs"]} == {"cpu"}
    for value, message in [("z9", "--gpus 'z9' is not accepted ('z9' is unknown); use comma-separated GPU types"),
                           ("cpu,h100", "--gpus 'cpu,h100' mixes cpu with GPU types"),
                           ("cpu,cpu", "--gpus 'cpu,cpu' is not accepted ('cpu' is given twice)"),
                           ("v100,V100 ", "--gpus 'v100,V100 ' is not accepted ('v100' is given twice)"),
                           ("v100,", "--gpus 'v100,' is not accepted (an empty name)")]:
        bad = runner.invoke(app, ["sweep", str(CPU_SPEC), "--gpus", value, "--db", str(tmp_path / "r.sqlite")])
        assert bad.exit_code == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_the_ray_extra_brings_ray_client_which_a_ray_address_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import tomllib

    from packaging.requirements import Requirement

    from detprof.sweep.ray_cluster import ClusterError, require_ray_client

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(Requirement(r).name == "ray" and "client" in Requirement(r).extras for r in extras["ray"])
    pytest.importorskip("grpc")
    require_ray_client("ray://head:10001")  # control: with grpcio installed it passes
    monkeypatch.setitem(sys.modules, "grpc", None)  # as on a machine with plain `pip install ray`
    with pytest.raises(ClusterError, match=r"--cluster 'ray://head:10001' connects through Ray Client, which needs "
                                           r"grpcio; install it with: pip install 'detprof\[ray\]'"):
        require_ray_client("ray://head:10001")


BIG_GRID = """\
name = "huge"
archs = ["small-cnn", "medium-cnn", "resnet18", "vgg16"]
kernel_sizes = [1, 2, 3, 4, 5, 6, 7]
modes = ["default", "deterministic", "deterministic-nofill", "deterministic-algorithms"]
gpus = ["cpu"]
steps = 100000
repeats = 50
"""


def test_a_large_plan_is_sized_first_and_needs_yes(tmp_path: Path) -> None:
    from detprof.sweep.plan import plan_size

    spec = tmp_path / "huge.toml"
    spec.write_text(BIG_GRID)
    size = plan_size(plan_sweep(load_spec(spec)))
    assert size.jobs == 30 and size.processes == 3_000 and size.large  # (3 + 7) archs x kernels x 3 treatments
    assert size.training_steps == 3_000 * 100_002 + 30 * 2 * 3 * 2  # warm-up 2 + timed; 3 profiled pairs x 2 steps
    db = tmp_path / "r.sqlite"
    refused = runner.invoke(app, ["sweep", str(spec), "--db", str(db)])
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert ("sweep huge plans 30 jobs: at least 3,000 worker processes and 300,006,360 training steps, more than "
            "2,000 processes or 5,000,000 training steps; check the spec, or add --yes to start it") in refused.stderr
    assert not db.exists()  # asked before anything, even the store, was made
    # Control: --yes passes the gate, and the next check (an unreachable cluster here) speaks instead.
    passed = runner.invoke(app, ["sweep", str(spec), "--db", str(db), "--yes", "--cluster", "pbs"])
    assert passed.exit_code == 2 and "plans 30 jobs" not in passed.stderr and "--cluster 'pbs'" in passed.stderr
    small = plan_size(plan_sweep(load_spec(CPU_SPEC)))
    assert not small.large and small.sentence() == "3 jobs: at least 18 worker processes and 126 training steps"


@pytest.mark.parametrize(("address", "message"), [
    ("ray://", "--cluster 'ray://' is not accepted; give a Ray Client address as ray://HOST:PORT"),
    ("ray://:10001", "--cluster 'ray://:10001' is not accepted"),
    ("ray://head:port", "--cluster 'ray://head:port' is not accepted"),
    ("ray://localhost:1", "nothing answers at localhost:1"),
])
def test_a_ray_client_address_is_refused_when_malformed_or_unanswered(address: str, message: str,
                                                                                  tmp_path: Path) -> None:
    pytest.importorskip("ray")
    spec = tmp_path / "x.toml"
    spec.write_text('name = "x"\narchs = ["small-cnn"]\nmodes = ["default", "deterministic"]\ngpus = ["cpu"]\n')
    result = CliRunner().invoke(app, ["sweep", str(spec), "--cluster", address, "--db", str(tmp_path / "s.sqlite")])
    # refused by detprof before Ray Client is asked (which retried for about 42 s, printing gRPC's messages)
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_ray_client_address_names_its_host_and_port() -> None:
    from detprof.sweep.ray_cluster import client_endpoint

    assert client_endpoint("ray://head-node:10001") == ("head-node", 10001)
    assert client_endpoint("ray://head-node") == ("head-node", 10001)  # Ray Client's own port
