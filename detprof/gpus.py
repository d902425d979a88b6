"""GPU discovery and monitoring through NVML (nvidia-ml-py), and the ``--gpu`` argument.

NVML never creates a CUDA context, so the parent process can list and choose GPUs without
touching the device that the worker processes measure on.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

# Aliases users type, matched against the NVML device name with spaces and dashes removed.
KNOWN_ALIASES = ("k80", "p4", "p100", "v100", "t4", "a10", "a10g", "a30", "a40", "a100", "a6000",
                 "l4", "l40", "l40s", "h100", "h200", "b200", "rtx5000", "rtx6000", "rtx3090", "rtx4090")

# NVML clock-event reason bits (nvml.h) that mean the GPU ran slower than it could.
SLOWDOWN_REASONS = {
    0x04: "sw_power_cap",
    0x08: "hw_slowdown",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
}
# Of those, the ones that mark a measurement as throttled (a power cap alone is normal at full load).
THROTTLING_REASONS = {"hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"}


class GpuSelectionError(ValueError):
    """Raised when ``--gpu`` names a device that is not on this machine."""


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML describes it. Memory in bytes, clocks in MHz, temperature in °C."""

    index: int
    name: str
    driver: str
    memory_total_bytes: int
    sm_clock_max_mhz: int | None
    memory_clock_max_mhz: int | None
    temperature_c: int | None
    cuda_cores: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DeviceChoice:
    """Where a measurement runs: ``kind`` is ``"cpu"`` or ``"cuda"``; ``gpu`` is set for CUDA."""

    kind: str
    name: str
    gpu: GpuInfo | None = None

    @property
    def torch_device(self) -> str:
        return "cpu" if self.gpu is None else f"cuda:{self.gpu.index}"


def _nvml() -> Any | None:
    """The initialised pynvml module, or None when NVML is not available here."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no driver, no library: a CPU machine
        return None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _optional(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except Exception:  # NVML raises NotSupported on some boards for some queries
        return None


def list_gpus() -> list[GpuInfo]:
    """All NVIDIA GPUs NVML sees, in PCI bus order (empty list when there is no NVML)."""
    nvml = _nvml()
    if nvml is None:
        return []
    driver = _text(nvml.nvmlSystemGetDriverVersion())
    gpus = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        gpus.append(GpuInfo(
            index=index,
            name=_text(nvml.nvmlDeviceGetName(handle)),
            driver=driver,
            memory_total_bytes=int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
            sm_clock_max_mhz=_optional(nvml.nvmlDeviceGetMaxClockInfo, handle, nvml.NVML_CLOCK_SM),
            memory_clock_max_mhz=_optional(nvml.nvmlDeviceGetMaxClockInfo, handle, nvml.NVML_CLOCK_MEM),
            temperature_c=_optional(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
            cuda_cores=_optional(nvml.nvmlDeviceGetNumGpuCores, handle),
        ))
    return gpus


def _matches_alias(alias: str, gpu_name: str) -> bool:
    """True when ``alias`` is one word, or two adjacent words, of the NVML name.

    "v100" names "Tesla V100-SXM2-16GB", "rtx5000" names "Quadro RTX 5000", "h100" names
    "NVIDIA H100 80GB HBM3"; "a10" does not name an "A100", nor "l40" an "L40S".
    """
    words = [w for w in re.split(r"[\s_\-]+", gpu_name.lower()) if w]
    wanted = re.sub(r"[\s_\-]", "", alias.lower())
    pairs = [a + b for a, b in zip(words, words[1:], strict=False)]
    return wanted in words or wanted in pairs


def select_device(gpu: str | None, gpus: list[GpuInfo] | None = None) -> DeviceChoice:
    """Resolve ``--gpu``: None/``auto`` (first GPU, else CPU), ``cpu``, an index, or an alias.

    Raises GpuSelectionError naming what is available when the request cannot be met.
    """
    available = list_gpus() if gpus is None else gpus
    request = (gpu or "auto").strip().lower()
    cpu = DeviceChoice(kind="cpu", name="cpu")
    if request == "cpu":
        return cpu
    if request == "auto":
        return DeviceChoice("cuda", available[0].name, available[0]) if available else cpu
    here = ", ".join([f"{g.index} ({g.name})" for g in available] + ["cpu"])
    if request.isdigit():
        index = int(request)
        for g in available:
            if g.index == index:
                return DeviceChoice("cuda", g.name, g)
        raise GpuSelectionError(f"no GPU with index {index}; available: {here}")
    for g in available:
        if _matches_alias(request, g.name):
            return DeviceChoice("cuda", g.name, g)
    known = "" if request in KNOWN_ALIASES else f" (known aliases: {', '.join(KNOWN_ALIASES)})"
    raise GpuSelectionError(f"GPU {gpu!r} is not on this machine{known}; available: {here}")


@dataclass
class ClockSample:
    t_s: float
    sm_clock_mhz: int | None
    temperature_c: int | None
    power_w: float | None
    reasons: int


@dataclass
class GpuMonitor:
    """Samples clocks, temperature, power and clock-event reasons in a background thread.

    Use as a context manager around the timed steps; ``summary()`` afterwards.
    """

    index: int
    interval_s: float = 0.05
    samples: list[ClockSample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> GpuMonitor:
        nvml = _nvml()
        if nvml is None:
            return self
        handle = nvml.nvmlDeviceGetHandleByIndex(self.index)
        reasons_call = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons",
                               getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None))
        start = time.perf_counter()

        def sample() -> None:
            while not self._stop.is_set():
                power_mw = _optional(nvml.nvmlDeviceGetPowerUsage, handle)
                self.samples.append(ClockSample(
                    t_s=time.perf_counter() - start,
                    sm_clock_mhz=_optional(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM),
                    temperature_c=_optional(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
                    power_w=None if power_mw is None else power_mw / 1000.0,
                    reasons=int(_optional(reasons_call, handle) or 0) if reasons_call else 0,
                ))
                self._stop.wait(self.interval_s)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict[str, Any]:
        """Clock (MHz), temperature (°C), power (W) ranges, slowdown reasons seen, and ``throttled``."""
        return summarize_samples(self.samples)


def summarize_samples(samples: list[ClockSample]) -> dict[str, Any]:
    """Summarise monitor samples; ``throttled`` is True when a thermal/hardware slowdown was seen."""
    if not samples:
        return {"samples": 0, "throttled": False, "reasons": []}
    reasons = sorted({name for s in samples for bit, name in SLOWDOWN_REASONS.items() if s.reasons & bit})

    def span(values: list[Any]) -> dict[str, float] | None:
        present = [v for v in values if v is not None]
        if not present:
            return None
        return {"min": min(present), "max": max(present), "mean": sum(present) / len(present)}

    return {
        "samples": len(samples),
        "sm_clock_mhz": span([s.sm_clock_mhz for s in samples]),
        "temperature_c": span([s.temperature_c for s in samples]),
        "power_w": span([s.power_w for s in samples]),
        "reasons": reasons,
        "throttled": any(r in THROTTLING_REASONS for r in reasons),
    }
