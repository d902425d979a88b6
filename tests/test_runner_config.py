from __future__ import annotations

import pytest

from detprof.gpus import DeviceChoice, GpuInfo
from detprof.modes import UnknownModeError
from detprof.overhead import OverheadArgumentError, build_config
from detprof.runner import JobSpec, OverheadConfig, default_protocol, default_workload, plan_jobs
from detprof.runner.config import CPU_DEFAULTS, GPU_DEFAULTS

CPU = DeviceChoice("cpu", "cpu")
FAKE_GPU = DeviceChoice("cuda", "Tesla V100-SXM2-16GB", GpuInfo(1, "Tesla V100-SXM2-16GB", "550", 16 << 30, 1530,
                                                                877, 40))


def test_jobs_interleave_modes_and_profile_only_the_first_repeat() -> None:
    config = OverheadConfig(default_workload("resnet18", False), default_protocol(False, repeats=3),
                            ("default", "deterministic"), "cpu", None)
    jobs = plan_jobs(config, "/traces")
    assert [j.mode for j in jobs] == ["default", "deterministic"] * 3
    assert [j.side for j in jobs] == [0, 1] * 3 and [j.repeat for j in jobs] == [0, 0, 1, 1, 2, 2]
    assert [j.profile for j in jobs] == [True, True, False, False, False, False]
    assert jobs[0].trace_path != jobs[1].trace_path and jobs[2].trace_path is None
    assert jobs[1].toggles["cublas_workspace_config"] == ":4096:8"
    assert JobSpec.from_json_dict(jobs[1].to_json_dict()) == jobs[1]


def test_aa_jobs_keep_two_sides_with_one_name() -> None:
    config = OverheadConfig(default_workload("small-cnn", False), default_protocol(False, repeats=2),
                            ("default", "default"), "cpu", None)
    assert [(j.mode, j.side) for j in plan_jobs(config, None)] == [("default", 0), ("default", 1)] * 2


def test_gpu_defaults_are_the_papers_and_cpu_defaults_are_smaller() -> None:
    gpu = build_config("vgg19", FAKE_GPU)
    assert (gpu.workload.batch_size, gpu.workload.image_size) == (64, 224)
    assert gpu.protocol.timed_steps == GPU_DEFAULTS["timed_steps"] == 100
    assert gpu.device == "cuda:1" and gpu.gpu_index == 1 and gpu.protocol.cpu_threads is None
    cpu = build_config("vgg19", CPU)
    assert (cpu.workload.batch_size, cpu.workload.image_size) == (CPU_DEFAULTS["batch_size"], 64)
    assert cpu.protocol.cpu_threads == 1 and cpu.device == "cpu"
    assert build_config("inception-v3", CPU).workload.image_size == 299  # its minimum to train
    assert build_config("small-cnn", CPU).workload.image_size == 32
    assert build_config("medium-cnn", CPU, kernel_size=6).workload.kernel_size == 6


def test_overrides_and_their_validation() -> None:
    config = build_config("resnet18", CPU, batch_size=4, timed_steps=3, warmup_steps=0, repeats=1, profile_steps=0,
                          threads=2, modes="no-benchmark,deterministic-nofill")
    assert (config.protocol.timed_steps, config.protocol.warmup_steps, config.protocol.repeats) == (3, 0, 1)
    assert config.protocol.cpu_threads == 2 and config.modes == ("no-benchmark", "deterministic-nofill")
    with pytest.raises(OverheadArgumentError, match="--warmup -1"):
        build_config("resnet18", CPU, warmup_steps=-1)
    with pytest.raises(OverheadArgumentError, match="--profile-steps -2"):
        build_config("resnet18", CPU, profile_steps=-2)
    with pytest.raises(UnknownModeError):
        build_config("resnet18", CPU, modes="default,deterministic,default")
