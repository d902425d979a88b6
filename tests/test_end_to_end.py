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

runner = CliRunner()
SMALL = ["--arch", "small-cnn", "--batch-size", "8", "--warmup", "1", "--steps", "4"]


def _invoke(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_overhead_then_kernels_then_runs(tmp_path: Path) -> None:
    db = str(tmp_path / "results.sqlite")
    doc = _invoke(["overhead", *SMALL, "--repeats", "2", "--profile-steps", "1", "--db", db, "--json"])
    assert doc["run_id"] == 1 and doc["arch"] == "small-cnn" and doc["framework"] == "pytorch"
    assert doc["device"] == {"kind": "cpu", "name": "cpu"}
    assert [m["mode"] for m in doc["modes"]] == ["default", "deterministic"]
    for mode in doc["modes"]:
        assert mode["repeats_ok"] == 2 and mode["step_ms"] > 0 and mode["step_ms_iqr"] >= 0
        assert mode["kernel_ms"] > 0 and mode["peak_mem_bytes"] > 0
    assert [m["determinism"] for m in doc["modes"]] == ["off", "on"]
    assert doc["modes"][1]["toggles"]["cublas_workspace_config"] == ":4096:8"
    low, high = doc["ratio_ci"]
    assert low <= doc["ratio"] <= high and doc["kernel_ratio"] > 0
    assert doc["environment"]["torch"].startswith("2.") and doc["protocol"]["cpu_threads"] == 1
    traces = sorted(Path(doc["trace_dir"]).glob("*.json.gz"))
    assert len(traces) == 2
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


def test_aa_test_runs_and_keeps_the_sides_apart(tmp_path: Path) -> None:
    doc = _invoke(["overhead", *SMALL, "--modes", "default,default", "--repeats", "1", "--profile-steps", "0",
                   "--db", str(tmp_path / "aa.sqlite"), "--json"])
    assert [m["mode"] for m in doc["modes"]] == ["default#1", "default#2"]
    assert doc["ratio_ci_method"] == "steps" and doc["kernel_ratio"] is None
    assert 0.5 < doc["ratio"] < 2.0


def test_killed_jobs_are_recorded_and_the_run_still_stored(tmp_path: Path) -> None:
    db = str(tmp_path / "t.sqlite")
    result = runner.invoke(app, ["overhead", "--arch", "small-cnn", "--steps", "1000000", "--repeats", "1",
                                 "--job-timeout", "1", "--db", db, "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ratio"] is None
    assert [f["status"] for f in doc["failed_jobs"]] == ["timeout", "timeout"]
    assert _invoke(["runs", "--db", db, "--json"])["runs"][0]["run_id"] == doc["run_id"]


def test_a_failing_worker_becomes_a_failed_job_with_its_error() -> None:
    config = OverheadConfig(default_workload("small-cnn", False), default_protocol(False, repeats=1), ("default",
                            "deterministic"), "cpu", None)
    spec = replace(plan_jobs(config, None)[0], workload=replace(config.workload, image_size=4))
    assert spec.side == 0
    outcome = _run_worker(spec, timeout_s=120)
    assert outcome.status == "failed"
    assert "RuntimeError" in (outcome.error or "") and outcome.step_ms == []
