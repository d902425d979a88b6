"""GPU-only checks: skipped on machines without CUDA (CI), run where a GPU is at hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detprof.cli import app
from detprof.gpus import list_gpus, select_device

pytestmark = pytest.mark.gpu
runner = CliRunner()


def test_nvml_sees_the_gpu_and_auto_selects_it() -> None:
    gpus = list_gpus()
    assert gpus and gpus[0].memory_total_bytes > 0
    choice = select_device("auto")
    assert choice.kind == "cuda" and choice.torch_device == "cuda:0"
    assert select_device("0").gpu == gpus[0]


def test_overhead_on_cuda_profiles_kernels_and_monitors_clocks(tmp_path: Path) -> None:
    db = str(tmp_path / "gpu.sqlite")
    result = runner.invoke(app, ["overhead", "--arch", "resnet18", "--batch-size", "16", "--image-size", "64",
                                 "--warmup", "3", "--steps", "10", "--repeats", "2", "--profile-steps", "2",
                                 "--db", db, "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["device"]["kind"] == "cuda"
    for mode in doc["modes"]:
        assert mode["peak_mem_bytes"] > 0 and mode["kernel_ms"] > 0 and mode["throttled"] is not None
    assert doc["environment"]["cudnn"] and doc["environment"]["sm_count"] > 0
    kernels = json.loads(runner.invoke(app, ["kernels", "--db", db, "--json"]).stdout)
    categories = {k["category"] for k in kernels["kernels"]}
    assert categories & {"conv forward", "conv data-grad", "conv weight-grad", "gemm"}
