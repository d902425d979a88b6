"""Real runs on the CPU: fresh worker processes, real torch training steps, the real profiler."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detprof.cli import app
from detprof.runner import OverheadConfig, default_protocol, default_workload, plan_jobs
from detprof.runner.launcher import _run_worker
from detprof.store import ResultStore

runner = CliRunner()
SMALL = ["--arch", "small-cnn", "--batch-size", "8", "--warmup", "1", "--steps", "4"]


def _invoke(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


@pytest.mark.slow
def test_overhead_then_kernels_then_runs(tmp_path: Path) -> None:
    db = str(tmp_path / "results.sqlite")
    doc = _invoke(["overhead", *SMALL, "--repeats", "3", "--profile-steps", "1", "--db", db, "--json"])
    assert doc["run_id"] == 1 and doc["arch"] == "small-cnn" and doc["framework"] == "pytorch"
    assert doc["device"] == {"kind": "cpu", "name": "cpu", "gpu_index": None, "gpu_uuid": None}
    assert [m["mode"] for m in doc["modes"]] == ["default", "deterministic"]
    for mode in doc["modes"]:
        assert mode["repeats_ok"] == 3 and mode["step_ms"] > 0 and mode["step_ms_iqr"] >= 0
        assert mode["kernel_ms"] > 0 and mode["kernel_ms_reason"] is None
        assert mode["peak_mem_bytes"] > 0 and mode["peak_mem_warmup_bytes"] > 0
        # Same seed, same batch, same steps: on a CPU every repeat trains bit-identically.
        assert mode["bitwise_identical_across_repeats"] is True and mode["distinct_state_hashes"] == 1
    assert [m["determinism"] for m in doc["modes"]] == ["off", "on"]
    assert doc["modes"][1]["toggles"]["cublas_workspace_config"] == ":4096:8"
    low, high = doc["ratio_ci"]
    assert low <= doc["ratio"] <= high and doc["kernel_ratio"] > 0 and doc["memory_ratio"] > 0
    assert doc["ratio_ci_method"] == "paired-t" and doc["ratio_pairs"] == 3 and doc["ratio_ci_reason"] is None
    assert doc["precision"]["stopped_by"] == "fixed-repeats" and doc["precision"]["target"] is None
    assert doc["verdict"].startswith(("deterministic is", "no difference resolved at"))
    jobs = ResultStore(db).jobs(1)
    assert list(jobs["side"]) == [0, 1, 1, 0, 0, 1]  # balanced order: AB, BA, AB
    assert jobs["state_sha256"].str.fullmatch("[0-9a-f]{64}").all()
    assert jobs.groupby("side")["state_sha256"].nunique().tolist() == [1, 1]
    assert doc["environment"]["torch"].startswith("2.") and doc["protocol"]["cpu_threads"] == 1
    assert set(doc["environment"]["tf32"]) == {"cudnn_allow_tf32", "cuda_matmul_allow_tf32", "float32_matmul_precision"}
    traces = sorted(Path(doc["trace_dir"]).glob("*.json.gz"))
    assert len(traces) == 6  # every job of the three profiled pairs
    assert "traceEvents" in json.loads(gzip.decompress(traces[0].read_bytes()))

    kernels = _invoke(["kernels", "--top", "5", "--db", db, "--json"])
    assert kernels["run_id"] == 1 and kernels["mode"] == "deterministic"
    rows = kernels["kernels"]
    assert len(rows) == 6 and rows[-1]["name"] == "(others)"
    assert set(rows[0]) >= {"name", "category", "calls", "total_us", "mean_us", "median_us", "min_us", "max_us",
                            "std_us", "share"}
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert {d["status"] for d in kernels["diff"]} <= {"added", "removed", "changed"}
    default_kernels = _invoke(["kernels", "--mode", "default", "--db", db, "--json"])
    assert default_kernels["mode"] == "default"

    listed = _invoke(["runs", "--db", db, "--json"])["runs"]
    assert [r["run_id"] for r in listed] == [1] and listed[0]["ratio"] == pytest.approx(doc["ratio"])

    human = runner.invoke(app, ["kernels", "--db", db])
    assert human.exit_code == 0 and "what changed" in human.stdout
    missing = runner.invoke(app, ["kernels", "--run", "9", "--db", db])
    assert missing.exit_code == 2 and "no run with id 9" in missing.stderr


@pytest.mark.slow
def test_aa_test_with_too_few_repeats_gives_a_ratio_but_no_interval(tmp_path: Path) -> None:
    doc = _invoke(["overhead", *SMALL, "--modes", "default,default", "--repeats", "2", "--profile-steps", "0",
                   "--db", str(tmp_path / "aa.sqlite"), "--json"])
    assert [m["mode"] for m in doc["modes"]] == ["default#1", "default#2"]
    assert doc["kernel_ratio"] is None and doc["modes"][0]["kernel_ms_reason"] == "not profiled (--profile-steps 0)"
    assert 0.5 < doc["ratio"] < 2.0 and doc["ratio_ci"] is None
    assert doc["ratio_ci_reason"].startswith("CI not available: too few repeats (2 per mode")
    human = runner.invoke(app, ["overhead", *SMALL, "--modes", "default,default", "--repeats", "1",
                                "--profile-steps", "0", "--db", str(tmp_path / "aa.sqlite")])
    assert human.exit_code == 0 and "CI not available: too few repeats" in human.stdout


@pytest.mark.slow
def test_the_adaptive_protocol_stops_at_the_precision_or_at_the_time_budget(tmp_path: Path) -> None:
    db = str(tmp_path / "adaptive.sqlite")
    easy = _invoke(["overhead", *SMALL, "--precision", "0.5", "--profile-steps", "0", "--db", db, "--json"])
    assert easy["precision"]["stopped_by"] == "precision" and easy["precision"]["reached"] is True
    # the target is checked from 5 pairs on, however narrow the CI looks before; on a busy machine the
    # ±50% may take a pair or two more (the rule itself, at exactly 5, is tests/test_runner_config.py's)
    assert easy["ratio_pairs"] >= 5 and easy["precision"]["achieved"] <= 0.5
    hard = _invoke(["overhead", *SMALL, "--precision", "0.0001", "--max-time", "4", "--profile-steps", "0",
                    "--db", db, "--json"])
    assert hard["precision"]["stopped_by"] == "max-time" and hard["precision"]["reached"] is False
    assert hard["ratio_pairs"] >= 3 and hard["precision"]["elapsed_s"] < 4 + 10  # at most one pair over
    human = runner.invoke(app, ["overhead", *SMALL, "--precision", "0.5", "--profile-steps", "0", "--db", db])
    assert "precision: target ±50% reached" in human.stdout


@pytest.mark.slow
def test_killed_jobs_are_recorded_and_the_run_still_stored(tmp_path: Path) -> None:
    db = str(tmp_path / "t.sqlite")
    result = runner.invoke(app, ["overhead", "--arch", "small-cnn", "--steps", "100000", "--repeats", "1",
                                 "--job-timeout", "1", "--db", db, "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ratio"] is None
    assert [f["status"] for f in doc["failed_jobs"]] == ["timeout", "timeout"]
    assert _invoke(["runs", "--db", db, "--json"])["runs"][0]["run_id"] == doc["run_id"]


@pytest.mark.slow
def test_a_failing_worker_becomes_a_failed_job_with_its_error() -> None:
    config = OverheadConfig(default_workload("small-cnn", False), default_protocol(False, repeats=1), ("default",
                            "deterministic"), "cpu", None)
    spec = replace(plan_jobs(config, None)[0], workload=replace(config.workload, image_size=4))
    assert spec.side == 0
    outcome = _run_worker(spec, timeout_s=120)
    assert outcome.status == "failed"
    assert "RuntimeError" in (outcome.error or "") and outcome.step_ms == []


def test_a_gpu_job_whose_profile_holds_no_gpu_kernel_reports_no_kernel_time(tmp_path: Path) -> None:
    """CUPTI may record nothing; then kernel time must be null with a reason, never CPU op time."""
    from detprof.runner.kernel_times import NO_GPU_KERNELS, KernelReader
    from detprof.runner.outcomes import JobOutcome
    from tests.kineto_traces import write_kineto_trace

    config = OverheadConfig(default_workload("small-cnn", False), default_protocol(False, repeats=1),
                            ("default", "deterministic"), "cpu", None)
    spec = plan_jobs(config, str(tmp_path))[0]
    kernel_less = write_kineto_trace(tmp_path / "no-kernels.json", [("sm90_xmma_gemm", 40.0)], "compact",
                                     cpu_ops=[("aten::mm", 30.0)], kernel_events=False)
    cpu_only = write_kineto_trace(tmp_path / "cpu-only.json", [], "compact", device=None,
                                  cpu_ops=[("aten::mm", 30.0)])
    for trace in (kernel_less, cpu_only):
        outcome = JobOutcome(spec, "ok", step_ms=[1.0], trace_path=str(trace))
        kernels = KernelReader(on_gpu=True)(outcome)
        assert kernels is not None and kernels.table is None and kernels.reason == NO_GPU_KERNELS
    kernels = KernelReader(on_gpu=False)(JobOutcome(spec, "ok", step_ms=[1.0], trace_path=str(cpu_only)))
    assert kernels is not None and kernels.reason is None and list(kernels.table["name"]) == ["aten::mm"]


def test_the_report_without_plotly_exits_2_in_one_line(tmp_path: Path) -> None:
    """A GPU machine without network may lack plotly; the report says what to do instead of a traceback."""
    import subprocess
    import sys

    script = ("import sys; sys.modules['plotly'] = None\n"  # as if plotly were not installed
              "from detprof.cli import app\napp()")
    process = subprocess.run([sys.executable, "-c", script, "report", "--db", str(tmp_path / "x.sqlite"),
                              "--out", str(tmp_path / "r.html")], capture_output=True, text=True, timeout=120)
    assert process.returncode == 2 and "Traceback" not in process.stderr
    assert process.stderr.strip().splitlines() == [process.stderr.strip()]
    assert "needs plotly, which is not installed here" in process.stderr


def _session(sid: int) -> list[int]:
    """Live (not zombie) processes of a session, from /proc."""
    from tests.procfs import SESSION, processes

    return processes(SESSION, sid)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_killed_measurement_takes_its_worker_with_it_and_its_traces_are_cleaned(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    db = tmp_path / "k.sqlite"
    main = subprocess.Popen([sys.executable, "-m", "detprof.cli", "overhead", "--arch", "small-cnn", "--steps",
                             "100000", "--repeats", "3", "--db", str(db)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(_session(main.pid)) < 3 and time.monotonic() < deadline:  # main, fork server, worker
        time.sleep(0.2)
    assert len(_session(main.pid)) >= 3, "no worker started"
    traces = list((tmp_path / "traces").glob("*/.measuring"))
    assert len(traces) == 1  # the measurement's trace folder, owned by the running process
    main.send_signal(signal.SIGKILL)
    main.wait()
    deadline = time.monotonic() + 20
    while _session(main.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _session(main.pid) == [], "a worker outlived the killed measurement"
    # the next measurement into the same store removes the folder the killed one left behind
    _invoke(["overhead", *SMALL, "--repeats", "1", "--profile-steps", "0", "--db", str(db), "--json"])
    assert not traces[0].parent.exists()


@pytest.mark.slow
def test_ctrl_c_stops_the_measurement_says_so_and_keeps_nothing(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    db = tmp_path / "c.sqlite"
    # As from a terminal: a shell that starts jobs in the background (CI may) makes them ignore SIGINT,
    # and an ignored signal stays ignored in every process started from there.
    main = subprocess.Popen([sys.executable, "-m", "detprof.cli", "overhead", "--arch", "small-cnn", "--steps",
                             "100000", "--repeats", "3", "--db", str(db)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while len(_session(main.pid)) < 3 and time.monotonic() < deadline:  # main, fork server, the first job
        time.sleep(0.1)
    time.sleep(1)  # the first job is running
    main.send_signal(signal.SIGINT)
    try:
        _, stderr = main.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # say what was still alive, then clean up
        alive = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120]
                 for pid in _session(main.pid)}
        os.killpg(main.pid, signal.SIGKILL)
        main.communicate()
        pytest.fail(f"detprof did not end within 60 s of Ctrl-C; still alive: {alive}")
    assert main.returncode == 130
    assert "detprof: interrupted" in stderr and "Traceback" not in stderr
    assert "nothing is stored" in stderr and "sweep" not in stderr  # it says what this command kept
    assert list((tmp_path / "traces").glob("*")) == []  # nothing was stored, so no traces are kept
    runs = runner.invoke(app, ["runs", "--db", str(db), "--json"])
    assert json.loads(runs.stdout)["runs"] == []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGKILL", "SIGTERM --json"])
def test_a_measurement_stopped_after_some_pairs_keeps_them_as_a_partial_run(tmp_path: Path, how: str) -> None:
    """What `timeout` (SIGTERM), Ctrl-C and kill -9 do to a long measurement: every pair that had
    finished stays stored, marked partial, with its ratio over those pairs and its traces."""
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    db = tmp_path / "p.sqlite"
    main = subprocess.Popen([sys.executable, "-m", "detprof.cli", "overhead", "--arch", "small-cnn", "--batch-size",
                             "4", "--steps", "150", "--warmup", "1", "--repeats", "40", "--profile-steps", "1",
                             "--db", str(db), *how.split()[1:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def stored_pairs() -> int:
        try:
            with sqlite3.connect(db) as connection:
                row = connection.execute("SELECT summary_json FROM runs").fetchone()
        except sqlite3.Error:
            return 0
        return json.loads(row[0])["ratio_pairs"] if row else 0

    deadline = time.monotonic() + 180
    while stored_pairs() < 4 and time.monotonic() < deadline:  # four pairs: three profiled, one not
        time.sleep(0.2)
    assert stored_pairs() >= 4, "the run was not stored as its pairs finished"
    main.send_signal(getattr(signal, how.split()[0]))
    stdout, stderr = main.communicate(timeout=60)
    assert main.returncode == {"SIGTERM": 143, "SIGINT": 130, "SIGKILL": -9}[how.split()[0]]
    if how.endswith("--json"):  # the one document on stdout is the partial run that was kept
        document = json.loads(stdout)
        assert document["partial"] is True and document["run_id"] == 1 and document["ratio_pairs"] >= 4
        assert document["interrupted"].startswith("terminated (SIGTERM): the job in progress was stopped")
    if how != "SIGKILL":
        lines = stderr.strip().splitlines()
        word = "terminated (SIGTERM)" if how.startswith("SIGTERM") else "interrupted"
        assert lines[-1].startswith(f"detprof: {word}: the job in progress was stopped; the ") and \
            "finished pairs are stored as run 1, marked partial" in lines[-1] and "Traceback" not in stderr
    with ResultStore(db) as store:
        summary = store.run_summary(1)
        jobs = store.jobs(1)
    pairs = summary["ratio_pairs"]
    assert summary["partial"] is True and summary["precision"]["stopped_by"] == "interrupted" and pairs >= 4
    assert summary["ratio"] is not None and summary["ratio_ci"] is not None  # the ratio over the finished pairs
    assert summary["kernel_ratio_pairs"] == 3 and summary["kernel_ratio_ci"] is not None
    assert (jobs["status"] == "ok").sum() >= 2 * pairs
    assert len(list((tmp_path / "traces").glob("*/*.json.gz"))) == 6  # the profiled pairs' traces are kept
    assert list((tmp_path / "traces").glob("*/.measuring")) == []  # and never cleaned up as abandoned
    # the next measurement into the store leaves the partial run as it is
    _invoke(["overhead", *SMALL, "--repeats", "1", "--profile-steps", "0", "--db", str(db), "--json"])
    with ResultStore(db) as store:
        assert store.run_summary(1)["ratio_pairs"] == pairs and len(list((tmp_path / "traces").glob("*/*.gz"))) == 6


@pytest.mark.slow
def test_a_finished_run_is_not_partial_and_its_kernel_ratio_has_a_paired_ci(tmp_path: Path) -> None:
    doc = _invoke(["overhead", *SMALL, "--repeats", "3", "--profile-steps", "1", "--db", str(tmp_path / "f.sqlite"),
                   "--json"])
    assert doc["partial"] is False and doc["precision"]["stopped_by"] == "fixed-repeats"
    assert doc["kernel_ratio_pairs"] == 3 and len(doc["kernel_ratio_ci"]) == 2
    low, high = doc["kernel_ratio_ci"]
    assert low < doc["kernel_ratio"] < high and doc["kernel_ratio_ci_reason"] is None
    assert all(m["kernel_jobs"] == 3 for m in doc["modes"])
    # fewer profiled pairs than a CI needs: the ratio comes without one, and says why
    one = _invoke(["overhead", *SMALL, "--repeats", "1", "--profile-steps", "1", "--db", str(tmp_path / "f.sqlite"),
                   "--json"])
    assert one["kernel_ratio_pairs"] == 1 and one["kernel_ratio_ci"] is None
    assert "too few repeats" in one["kernel_ratio_ci_reason"]


SLOW_PROFILED = f"{Path(__file__).parent / 'data' / 'models' / 'profiling_models.py'}:slow_when_profiled"


@pytest.mark.slow
def test_a_run_whose_profiled_steps_are_slow_is_flagged_and_states_no_kernel_ratio(tmp_path: Path) -> None:
    args = ["overhead", "--model", SLOW_PROFILED, "--batch-size", "4", "--image-size", "16", "--warmup", "1",
            "--steps", "4", "--repeats", "3", "--profile-steps", "1", "--db", str(tmp_path / "s.sqlite")]
    doc = _invoke([*args, "--json"])
    assert all(m["profiler_slowdown"] > 2.0 for m in doc["modes"]), [m["profiler_slowdown"] for m in doc["modes"]]
    assert doc["kernel_times_reliable"] is False
    assert doc["kernel_times_note"].startswith("kernel times unreliable: profiled steps took x")
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0 and "kernel time x" not in shown.stdout
    assert "kernel time ratio not stated (kernel times unreliable, below)" in " ".join(shown.stdout.split())
    assert "kernel times unreliable: profiled steps took x" in " ".join(shown.stdout.split())


def test_the_coverage_rule_accepts_kernels_that_fill_the_step_and_names_every_way_out() -> None:
    from types import SimpleNamespace

    from detprof.runner.coverage import kernel_times_note

    def modes(*coverages: float | None, slowdowns: tuple[float | None, ...] = (None, None)) -> list:
        return [SimpleNamespace(mode=f"m{i}", kernel_coverage=c, profiler_slowdown=s)
                for i, (c, s) in enumerate(zip(coverages, slowdowns, strict=True))]

    assert kernel_times_note(modes(1.0, 0.95)) is None and kernel_times_note(modes(None, None)) is None
    assert kernel_times_note(modes(0.90, 1.10)) is None
    # the profiler's per-op cost slows both modes alike: their kernel times still compare
    assert kernel_times_note(modes(0.95, 0.95, slowdowns=(1.3, 1.35))) is None
    over = kernel_times_note(modes(1.0, 1.5))
    assert over is not None and "150.0% in m1 of the profiled step" in over
    # host time between ops (Python, on a CPU) leaves the kernels part of the step: said, not withheld
    assert kernel_times_note(modes(0.85, 0.88)) is None
    idle = kernel_times_note(modes(0.4, 1.0))
    assert idle is not None and "cover only 40.0% in m0" in idle and "outside 50-110%" in idle
    unlike = kernel_times_note(modes(0.95, 0.95, slowdowns=(1.1, 1.5)))
    assert unlike is not None and "slowed the modes' steps differently (x1.10 in m0, x1.50 in m1)" in unlike
    slowed = kernel_times_note(modes(0.95, 0.95, slowdowns=(2.5, 2.4)))
    assert slowed is not None and "profiled steps took x2.50 in m0, x2.40 in m1 the timed steps' time" in slowed


@pytest.mark.slow
def test_the_api_works_from_a_plain_script_without_a_main_guard(tmp_path: Path) -> None:
    """multiprocessing re-runs the caller's script in each job unless told not to; detprof's jobs
    must not re-run the measurement, and the run records that it came from the API."""
    import subprocess
    import sys

    script = tmp_path / "measure.py"
    script.write_text(
        "from detprof import WorkloadRequest, run_overhead\n"
        "doc = run_overhead(WorkloadRequest(arch='small-cnn', batch_size=4), gpu='cpu',\n"
        f"                   db={str(tmp_path / 'api.sqlite')!r},\n"
        "                   warmup_steps=1, timed_steps=2, repeats=3, profile_steps=0)\n"
        "print(doc['ratio_pairs'], len(doc['failed_jobs']), doc['command'])\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "3 0 Python API: detprof.overhead.run_overhead"


def _kill_myself() -> int:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
    return 0


def test_a_job_killed_by_a_signal_is_named_so_and_not_called_out_of_memory(tmp_path: Path) -> None:
    from detprof.backends.torch import JOB_PRELOAD
    from detprof.process.processes import run_in_fresh_process
    from detprof.runner.outcomes import failure_of

    outcome = run_in_fresh_process("tests.test_end_to_end:_kill_myself", (), {}, tmp_path / "job.log", 60,
                                   JOB_PRELOAD)
    assert outcome.exitcode == -9
    assert failure_of(outcome.exitcode, outcome.log_tail) == ("killed", "worker killed by signal 9 (SIGKILL)")
    # the log is quoted, never read for a cause: out of memory is what a job's own result says (tests/test_child.py)
    assert failure_of(-9, "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB")[0] == "killed"
    assert failure_of(1, "Segmentation fault") == ("crashed", "worker exit code 1; its last output: Segmentation fault")
    # a long log is quoted by its last line alone, cut short: the error stays one line
    status, error = failure_of(1, "x" * 5000 + "\nline one\n" + "y" * 400)
    assert "\n" not in error and len(error) < 300 and error.endswith("...")
