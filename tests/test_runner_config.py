from __future__ import annotations

import pytest

from detprof.errors import ArgumentError
from detprof.gpus import DeviceChoice, GpuInfo
from detprof.modes import UnknownModeError
from detprof.runner import JobSpec, OverheadConfig, default_protocol, default_workload, plan_jobs
from detprof.runner.config import CPU_DEFAULTS, GPU_DEFAULTS, build_config, plan_pair
from detprof.workload import WorkloadRequest

CPU = DeviceChoice("cpu", "cpu")
V100 = GpuInfo(1, "Tesla V100-SXM2-16GB", "550", 16 << 30, 1530, 877, 40,
               uuid="GPU-5a1e0c2d-1111-2222-3333-444455556666", nvml_index=3)
FAKE_GPU = DeviceChoice("cuda", "Tesla V100-SXM2-16GB", V100)


def test_pairs_run_in_balanced_order_and_only_the_first_three_pairs_are_profiled() -> None:
    config = OverheadConfig(default_workload("resnet18", False), default_protocol(False, repeats=4),
                            ("default", "deterministic"), "cpu", None)
    jobs = plan_jobs(config, "/traces")
    assert [j.mode for j in jobs] == ["default", "deterministic", "deterministic", "default", "default",
                                      "deterministic", "deterministic", "default"]
    assert [j.side for j in jobs] == [0, 1, 1, 0, 0, 1, 1, 0] and [j.repeat for j in jobs] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [j.index for j in jobs] == list(range(8))
    # enough profiled pairs for a paired CI of the kernel-time ratio, and no more
    assert [j.profile for j in jobs] == [True] * 6 + [False] * 2
    assert len({j.trace_path for j in jobs[:6]}) == 6 and jobs[6].trace_path is None
    assert jobs[1].toggles["cublas_workspace_config"] == ":4096:8"
    assert JobSpec.from_json_dict(jobs[1].to_json_dict()) == jobs[1]
    assert plan_pair(config, 7, 14, None)[0].side == 1 and plan_pair(config, 7, 14, None)[0].index == 14


def test_aa_jobs_keep_two_sides_with_one_name() -> None:
    config = OverheadConfig(default_workload("small-cnn", False), default_protocol(False, repeats=2),
                            ("default", "default"), "cpu", None)
    assert [(j.mode, j.side) for j in plan_jobs(config, None)] == [("default", 0), ("default", 1),
                                                                   ("default", 1), ("default", 0)]


def test_the_protocol_is_adaptive_by_default_and_fixed_when_repeats_alone_are_given() -> None:
    adaptive = build_config(WorkloadRequest(arch="resnet18"), CPU).protocol
    assert adaptive.adaptive and adaptive.precision == CPU_DEFAULTS["precision"]
    assert adaptive.max_time_s == CPU_DEFAULTS["max_time_s"] and adaptive.repeats == CPU_DEFAULTS["repeats"] == 5
    fixed = build_config(WorkloadRequest(arch="resnet18"), CPU, repeats=4).protocol
    assert not fixed.adaptive and fixed.repeats == 4 and fixed.max_time_s is None
    both = build_config(WorkloadRequest(arch="resnet18"), CPU, repeats=4, precision=0.05, max_time_s=30).protocol
    assert both.adaptive and (both.repeats, both.precision, both.max_time_s) == (4, 0.05, 30)
    assert not build_config(WorkloadRequest(arch="resnet18"), CPU, precision=0).protocol.adaptive
    gpu = build_config(WorkloadRequest(arch="vgg19"), FAKE_GPU).protocol
    assert (gpu.precision, gpu.max_time_s) == (GPU_DEFAULTS["precision"], GPU_DEFAULTS["max_time_s"])
    with pytest.raises(ArgumentError, match=r"--precision 1.5 is not accepted; use a fraction"):
        build_config(WorkloadRequest(arch="resnet18"), CPU, precision=1.5)
    with pytest.raises(ArgumentError, match=r"--max-time 0 is not accepted"):
        build_config(WorkloadRequest(arch="resnet18"), CPU, max_time_s=0)


def test_gpu_defaults_are_the_papers_and_cpu_defaults_are_smaller() -> None:
    gpu = build_config(WorkloadRequest(arch="vgg19"), FAKE_GPU)
    assert (gpu.workload.batch_size, gpu.workload.image_size) == (64, 224)
    assert gpu.protocol.timed_steps == GPU_DEFAULTS["timed_steps"] == 100
    # The worker sees only the chosen GPU (CUDA_VISIBLE_DEVICES=<uuid>), as its cuda:0.
    assert gpu.device == "cuda:0" and gpu.gpu_index == 1 and gpu.gpu_uuid == V100.uuid
    assert gpu.protocol.cpu_threads is None
    cpu = build_config(WorkloadRequest(arch="vgg19"), CPU)
    assert (cpu.workload.batch_size, cpu.workload.image_size) == (CPU_DEFAULTS["batch_size"], 64)
    assert cpu.protocol.cpu_threads == 1 and cpu.device == "cpu"
    assert build_config(WorkloadRequest(arch="inception-v3"), CPU).workload.image_size == 299  # its minimum to train
    assert build_config(WorkloadRequest(arch="small-cnn"), CPU).workload.image_size == 32
    assert build_config(WorkloadRequest(arch="medium-cnn", kernel_size=6), CPU).workload.kernel_size == 6


def test_overrides_and_their_validation() -> None:
    config = build_config(WorkloadRequest(arch="resnet18", batch_size=4), CPU, timed_steps=3, warmup_steps=0, repeats=1,
                          profile_steps=0,
                          threads=2, modes=("no-benchmark", "deterministic-nofill"))
    assert (config.protocol.timed_steps, config.protocol.warmup_steps, config.protocol.repeats) == (3, 0, 1)
    assert config.protocol.cpu_threads == 2 and config.modes == ("no-benchmark", "deterministic-nofill")
    with pytest.raises(ArgumentError, match="--warmup -1"):
        build_config(WorkloadRequest(arch="resnet18"), CPU, warmup_steps=-1)
    with pytest.raises(ArgumentError, match="--profile-steps -2"):
        build_config(WorkloadRequest(arch="resnet18"), CPU, profile_steps=-2)
    with pytest.raises(UnknownModeError, match="two mode names"):
        build_config(WorkloadRequest(arch="resnet18"), CPU, modes=("default", "deterministic", "default"))
    with pytest.raises(UnknownModeError, match="two mode names"):  # text is the CLI's to parse, not the API's
        build_config(WorkloadRequest(arch="resnet18"), CPU, modes="default,deterministic")  # type: ignore[arg-type]
    with pytest.raises(UnknownModeError, match="unknown mode 'fast'"):
        build_config(WorkloadRequest(arch="resnet18"), CPU, modes=("default", "fast"))


def test_the_time_budget_is_kept_from_the_fewest_pairs_that_give_a_ci() -> None:
    from detprof.runner.protocol import stop_reason as _stop_reason
    from detprof.stats import RatioEstimate

    protocol = default_protocol(False)  # adaptive: at least 5 pairs wanted, ±2%, 40 s
    wide = RatioEstimate(1.0, 0.9, 1.1, "paired-t", 3)  # ±10%: far from the target
    assert protocol.repeats == 5 and protocol.max_time_s == 40 and protocol.budget_floor == 3
    # a slow machine: 12 s per pair. Two pairs run however long they take; the third gives the CI
    assert _stop_reason(protocol, 2, wide, 24.0, [12.0, 12.0], 0) is None
    # from 3 pairs on no pair starts that would pass 40 s, although 5 were wanted
    assert _stop_reason(protocol, 3, wide, 36.0, [12.0] * 3, 0) == "max-time"
    # control: a fast machine runs on past 5 pairs while the budget allows
    assert _stop_reason(protocol, 6, wide, 24.0, [4.0] * 6, 0) is None
    # the precision target stops the run only from 5 pairs on, however narrow the CI looks before
    narrow = RatioEstimate(1.0, 0.99, 1.01, "paired-t", 3)
    assert _stop_reason(protocol, 3, narrow, 12.0, [4.0] * 3, 0) is None
    assert _stop_reason(protocol, 5, narrow, 20.0, [4.0] * 5, 0) == "precision"
    # a fixed protocol runs exactly its pairs, whatever the time
    fixed = default_protocol(False, precision=0.0, repeats=4)
    assert _stop_reason(fixed, 3, wide, 500.0, [100.0] * 3, 0) is None
    assert _stop_reason(fixed, 4, wide, 500.0, [100.0] * 4, 0) == "fixed-repeats"


def test_the_takeaway_states_the_cost_as_far_as_the_ci_resolves_it_and_how_the_repeats_compared() -> None:
    from types import SimpleNamespace

    from detprof.runner.summary import takeaway
    from detprof.stats import RatioEstimate

    def result(low: float, high: float, same: tuple[bool | None, bool | None], kind: str = "cpu") -> SimpleNamespace:
        modes = [SimpleNamespace(mode=name, repeats_ok=5, bitwise_identical_across_repeats=s)
                 for name, s in zip(("default", "deterministic"), same, strict=True)]
        return SimpleNamespace(ratio=RatioEstimate((low + high) / 2, low, high, "paired-t", 5), device_kind=kind,
                               device_name="NVIDIA H100 80GB HBM3", config=SimpleNamespace(
                                   workload=SimpleNamespace(arch="resnet18")), modes=modes)

    bound = takeaway(result(0.97, 1.073, (True, True)))
    assert bound.startswith("Takeaway: deterministic costs resnet18 at most 7.3% in step time over default on "
                            "this CPU (the 95% CI's upper end; no difference was resolved)")
    assert "both modes' processes trained bit-identically (5 and 5 repeats)" in bound
    slower = takeaway(result(1.2, 1.3, (False, True), kind="cuda"))
    assert ("deterministic made resnet18's training step 25.0% slower than default on NVIDIA H100 80GB HBM3 "
            "(95% CI 20.0% to 30.0%), and only deterministic's processes trained bit-identically") in slower
    broken = takeaway(result(0.8, 0.9, (False, False)))
    assert "15.0% faster" in broken and "deterministic's processes did not train bit-identically" in broken
