"""GPU selection logic that needs no GPU: CUDA_VISIBLE_DEVICES as CUDA reads it, choosing by UUID,
and what the monitor says when it cannot sample (this machine really has no NVML)."""

from __future__ import annotations

import pytest

from detprof.gpus import (
    ClockSample,
    DeviceChoice,
    GpuInfo,
    GpuMonitor,
    GpuSelectionError,
    apply_visible_devices,
    list_gpus,
    select_device,
    summarize_samples,
)
from detprof.modes import MODES, environment_for


def _gpu(nvml_index: int, name: str, uuid: str) -> GpuInfo:
    return GpuInfo(index=nvml_index, name=name, driver="580.1", memory_total_bytes=80 << 30, sm_clock_max_mhz=1980,
                   memory_clock_max_mhz=2619, temperature_c=35, uuid=uuid, nvml_index=nvml_index)


MACHINE = [_gpu(0, "NVIDIA A100-SXM4-80GB", "GPU-0a0a0a0a-0000-0000-0000-000000000000"),
           _gpu(1, "NVIDIA H100 80GB HBM3", "GPU-1b1b1b1b-0000-0000-0000-000000000000"),
           _gpu(2, "NVIDIA H100 80GB HBM3", "GPU-2c2c2c2c-0000-0000-0000-000000000000"),
           _gpu(3, "NVIDIA H200", "GPU-1b9f0000-0000-0000-0000-000000000000")]


def _visible(value: str | None) -> list[tuple[int, int | None]]:
    return [(g.index, g.nvml_index) for g in apply_visible_devices(MACHINE, value)]


def test_visible_devices_renumber_the_gpus_in_the_listed_order() -> None:
    assert _visible(None) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert _visible("2,0") == [(0, 2), (1, 0)]  # cuda:0 is the machine's GPU 2
    assert _visible("GPU-2c2c,1") == [(0, 2), (1, 1)]  # UUID prefixes, as CUDA accepts them


def test_visible_devices_stop_at_the_first_bad_entry_and_duplicates_hide_everything() -> None:
    assert _visible("") == []
    assert _visible("1,7,2") == [(0, 1)]  # no GPU 7: the list ends there
    assert _visible("GPU-1b,2") == []  # ambiguous prefix (two UUIDs start with GPU-1b): ends at once
    assert _visible("3,MIG-1234,0") == [(0, 3)]  # MIG instances are not mapped to GPUs
    assert _visible("0,0") == []


def test_select_device_by_index_alias_and_auto_within_the_visible_gpus() -> None:
    visible = apply_visible_devices(MACHINE, "3,1")
    assert select_device("auto", visible).gpu == visible[0] and visible[0].nvml_index == 3
    chosen = select_device("1", visible)
    assert chosen.gpu is not None and chosen.gpu.nvml_index == 1 and chosen.name == "NVIDIA H100 80GB HBM3"
    assert select_device("h200", visible).gpu == visible[0]
    # The worker always finds its GPU at cuda:0, because its CUDA_VISIBLE_DEVICES is that GPU's UUID.
    assert chosen.torch_device == "cuda:0"
    env = environment_for(MODES["deterministic"], {"CUDA_VISIBLE_DEVICES": "3,1"}, chosen.gpu.uuid)
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-1b1b1b1b-0000-0000-0000-000000000000"
    with pytest.raises(GpuSelectionError, match=r"GPU 'a100' is not on this machine.*available: 0 \(NVIDIA H200\)"):
        select_device("a100", visible)
    with pytest.raises(GpuSelectionError, match="no GPU with index 2"):
        select_device("2", visible)
    assert select_device("auto", []) == DeviceChoice("cpu", "cpu")


def test_an_empty_gpu_argument_is_an_error_not_auto() -> None:
    with pytest.raises(GpuSelectionError, match=r"--gpu '' is not accepted; use auto, cpu"):
        select_device("", MACHINE)


def test_without_nvml_gpus_come_from_cuda_and_are_measured_unmonitored() -> None:
    # This machine has no NVML. A probe that finds a GPU through CUDA stands in for a machine with
    # a CUDA driver but no libnvidia-ml: the GPU is used, not silently replaced by the CPU.
    found = [GpuInfo(0, "NVIDIA H100 80GB HBM3", None, 80 << 30, None, None, None, uuid="GPU-1b1b", source="cuda")]
    assert list_gpus(environ={}, cuda_probe=lambda: found) == found
    assert select_device("auto", found).kind == "cuda"
    assert list_gpus(environ={}, cuda_probe=list) == []


def test_the_monitor_without_nvml_samples_nothing_and_does_not_claim_no_throttling() -> None:
    with GpuMonitor("GPU-1b1b") as monitor:
        pass
    summary = monitor.summary()
    assert summary["samples"] == 0 and summary["throttled"] is None
    assert "NVML unavailable" in summary["unavailable"]


def test_sample_summary_flags_thermal_slowdown_but_not_a_power_cap() -> None:
    capped = [ClockSample(0.0, 1980, 60, 690.0, 0x04), ClockSample(0.05, 1970, 61, 700.0, 0x04)]
    assert summarize_samples(capped)["throttled"] is False
    assert summarize_samples(capped)["reasons"] == ["sw_power_cap"]
    hot = capped + [ClockSample(0.1, 1500, 88, 500.0, 0x20)]
    summary = summarize_samples(hot)
    assert summary["throttled"] is True and summary["sm_clock_mhz"]["min"] == 1500
    assert summarize_samples([])["throttled"] is None
