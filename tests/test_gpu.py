"""GPU-only checks: skipped on machines without CUDA (CI), run where a GPU is at hand
(benchmarks/gpu_campaign.sh runs them first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detprof.cli import app
from detprof.gpus import GpuMonitor, list_gpus, select_device

pytestmark = pytest.mark.gpu
runner = CliRunner()
SMALL_RUN = ["--batch-size", "16", "--image-size", "64", "--warmup", "3", "--steps", "10", "--repeats", "3",
             "--profile-steps", "2"]


def _overhead(tmp_path: Path, *args: str) -> dict:
    result = runner.invoke(app, ["overhead", *args, "--db", str(tmp_path / "gpu.sqlite"), "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_nvml_sees_the_gpu_and_auto_selects_it_by_uuid() -> None:
    gpus = list_gpus()
    assert gpus and gpus[0].memory_total_bytes > 0 and gpus[0].uuid and gpus[0].uuid.startswith("GPU-")
    choice = select_device("auto")
    assert choice.kind == "cuda" and choice.torch_device == "cuda:0"
    # Compare identities, not whole records: temperatures change between two reads.
    assert choice.gpu is not None and select_device("0").gpu.uuid == gpus[0].uuid == choice.gpu.uuid


def test_the_monitor_samples_the_gpu_it_was_given() -> None:
    import time

    with GpuMonitor(list_gpus()[0].uuid) as monitor:
        time.sleep(0.3)
    summary = monitor.summary()
    assert summary["samples"] >= 3 and "unavailable" not in summary
    assert summary["throttled"] in (True, False) and summary["sm_clock_mhz"]["max"] > 0


def test_overhead_on_cuda_profiles_kernels_hashes_weights_and_monitors_clocks(tmp_path: Path) -> None:
    doc = _overhead(tmp_path, "--arch", "resnet18", *SMALL_RUN)
    assert doc["device"]["kind"] == "cuda" and doc["device"]["gpu_uuid"] == list_gpus()[0].uuid
    env = doc["environment"]
    assert env["gpu_uuid"] == doc["device"]["gpu_uuid"], "the worker measured another GPU than the one chosen"
    assert env["cudnn"] and env["sm_count"] > 0 and set(env["tf32"]) >= {"cudnn_allow_tf32", "cuda_matmul_allow_tf32"}
    for mode in doc["modes"]:
        assert mode["kernel_ms"] > 0 and mode["kernel_ms_reason"] is None
        assert mode["peak_mem_bytes"] > 0 and mode["peak_mem_warmup_bytes"] > 0
        assert mode["throttled"] is not None and mode["distinct_state_hashes"] >= 1
    deterministic = doc["modes"][1]
    assert deterministic["bitwise_identical_across_repeats"] is True
    assert deterministic["determinism"] in ("on", "not fully deterministic")
    kernels = json.loads(runner.invoke(app, ["kernels", "--db", str(tmp_path / "gpu.sqlite"), "--json"]).stdout)
    categories = {k["category"] for k in kernels["kernels"]}
    assert categories & {"conv forward", "conv data-grad", "conv weight-grad", "gemm"}


def test_vgg_reaches_the_adaptive_pooling_backward_that_its_metadata_names(tmp_path: Path) -> None:
    doc = _overhead(tmp_path, "--arch", "vgg16", "--batch-size", "4", "--image-size", "32", "--warmup", "1",
                    "--steps", "2", "--repeats", "1", "--profile-steps", "0")
    caught = doc["modes"][1]["nondeterministic_ops"]
    assert set(doc["expected_nondeterministic_ops"]) <= set(caught), caught


def test_a_gpu_that_is_not_there_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["overhead", "--gpu", "9", "--db", str(tmp_path / "x.sqlite")])
    assert result.exit_code == 2 and "no GPU with index 9" in result.stderr


def test_stability_trains_on_the_gpu_and_control_is_bitwise_identical(tmp_path: Path) -> None:
    result = runner.invoke(app, ["stability", "--task", "digits", "--variant", "control", "--runs", "2", "--epochs",
                                 "2", "--gpu", "auto", "--db", str(tmp_path / "s.sqlite"), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["device"] == list_gpus()[0].name and doc["threads"] is None
    assert doc["churn"] == 0.0 and doc["l2"] == 0.0  # deterministic mode and every seed fixed: bit-identical


def _check(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(result.stdout)


def test_check_on_the_gpu_reports_what_it_finds_in_both_modes() -> None:
    # Expected: identical under deterministic, not necessarily under default; asserted: the verdict
    # agrees with the exit code and with the weights, and a divergence comes with its step.
    for mode in ("default", "deterministic"):
        code, doc = _check("check", "--arch", "small-cnn", "--mode", mode, "--steps", "5", "--locate-op")
        assert doc["runs"][0]["device"] != "cpu" and (code == 0) == doc["bitwise_identical"]
        assert (doc["max_abs_diff"] == 0) == doc["bitwise_identical"]
        if not doc["bitwise_identical"]:
            assert doc["first_divergence"]["step"] >= 1 and "op" in doc["first_divergence"]


def test_check_cpu_against_cuda_varies_the_device_only() -> None:
    code, doc = _check("check", "--arch", "small-cnn", "--devices", "cpu,cuda", "--steps", "3")
    assert doc["differing_factor"] == "device" and doc["runs"][0]["device"] == "cpu"
    assert doc["runs"][1]["device"] != "cpu" and (code == 0) == doc["bitwise_identical"]


def test_audit_and_ablation_on_the_gpu(tmp_path: Path) -> None:
    code, doc = _check("audit", "--arch", "vgg16", "--batch-size", "8", "--image-size", "64")
    assert (code == 0) == doc["fully_deterministic"] and doc["kernel_diff_available"]
    result = runner.invoke(app, ["overhead", "--arch", "small-cnn", "--ablate", "--ablate-modes",
                                 "no-benchmark,tf32-off", *SMALL_RUN, "--db", str(tmp_path / "a.sqlite"), "--json"])
    assert result.exit_code == 0, result.stderr
    assert [row["mode"] for row in json.loads(result.stdout)["steps"]] == ["no-benchmark", "tf32-off"]


def test_the_tf32_row_runs_on_the_gpu_and_sees_a_float32_product(tmp_path: Path) -> None:
    """Known answer: a lookup followed by a float32 product differs with TF32 on (its inputs rounded to 10
    mantissa bits); control: the lookup alone, no product, is bitwise equal either way."""
    models = Path(__file__).parent / "data" / "inference" / "models.py"
    for model, verdict in (("tf32_sensitive", "logits differ"), ("lookup", "bitwise")):
        result = runner.invoke(app, ["infer", "--model", f"{models}:{model}", "--num-classes", "64", "--rows", "tf32",
                                     "--prompts", "4", "--new-tokens", "4", "--gpu", "0",
                                     "--db", str(tmp_path / "i.sqlite"), "--json"])
        assert result.exit_code in (0, 1), result.stderr
        document = json.loads(result.stdout)
        assert [row["row"] for row in document["rows"]] == ["tf32"] and document["rows_left_out"] == {}
        assert document["rows"][0]["verdict"] in ((verdict, "tokens differ") if verdict != "bitwise" else (verdict,))
