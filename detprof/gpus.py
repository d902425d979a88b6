"""GPU discovery and monitoring through NVML (nvidia-ml-py), and the ``--gpu`` argument.

NVML never creates a CUDA context, so the parent process can list and choose GPUs without
touching the device that the worker processes measure on.

GPUs are chosen by UUID, never by NVML index: NVML numbers every GPU on the machine in PCI bus
order and ignores ``CUDA_VISIBLE_DEVICES``, while CUDA numbers only the GPUs that variable lets
through, in the order it lists them. detprof applies the variable the way CUDA does, numbers the
visible GPUs from 0 (what ``--gpu N`` and ``cuda:N`` mean in the user's shell), starts each worker
with ``CUDA_VISIBLE_DEVICES=<uuid>`` so that the chosen GPU is its ``cuda:0``, and monitors that
same GPU with ``nvmlDeviceGetHandleByUUID``. Where NVML is missing but a CUDA driver is present,
the GPUs are found through torch in a throw-away process and measured without the monitor.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from detprof.errors import DetprofError
from detprof.parse import is_whole_number

if TYPE_CHECKING:
    from detprof.documents import GpusDocument

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
VISIBLE_DEVICES_VAR = "CUDA_VISIBLE_DEVICES"
NO_MONITOR_REASON = "NVML unavailable: clocks, temperature and throttling were not monitored"
CUDA_PROBE_TIMEOUT_S = 120.0


class GpuSelectionError(DetprofError, ValueError):
    """Raised when ``--gpu`` names a device that is not on this machine."""


@dataclass(frozen=True)
class GpuInfo:
    """One GPU this process may use. Memory in bytes, clocks in MHz, temperature in °C.

    ``index`` is the CUDA ordinal among the visible GPUs (``CUDA_VISIBLE_DEVICES`` applied);
    ``nvml_index`` is the number nvidia-smi shows (None when NVML is unavailable); ``source`` is
    ``nvml``, or ``cuda`` when the GPU was found through torch because NVML is missing (then
    nothing is monitored).
    """

    index: int
    name: str
    driver: str | None
    memory_total_bytes: int
    sm_clock_max_mhz: int | None
    memory_clock_max_mhz: int | None
    temperature_c: int | None
    cuda_cores: int | None = None
    uuid: str | None = None
    nvml_index: int | None = None
    source: str = "nvml"

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
        """The device inside a worker: ``cuda:0``, because the worker sees only the chosen GPU (by
        UUID); a GPU without a known UUID keeps its own ordinal."""
        if self.gpu is None:
            return "cpu"
        return "cuda:0" if self.gpu.uuid else f"cuda:{self.gpu.index}"


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


def _nvml_gpus(nvml: Any) -> list[GpuInfo]:
    """Every GPU NVML sees, in its (PCI bus) order, numbered by NVML index."""
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
            uuid=_optional(lambda h: _text(nvml.nvmlDeviceGetUUID(h)), handle),
            nvml_index=index,
        ))
    return gpus


def apply_visible_devices(gpus: list[GpuInfo], value: str | None) -> list[GpuInfo]:
    """The GPUs CUDA would see under ``CUDA_VISIBLE_DEVICES=value``, renumbered as CUDA numbers them.

    ``gpus`` are all of the machine's GPUs in NVML (PCI bus) order. CUDA's rules: None leaves
    every GPU visible; entries are indices or (prefixes of) ``GPU-`` UUIDs, in the order that
    becomes the CUDA numbering; the first entry that names no GPU, or names one ambiguously,
    ends the list; a GPU listed twice makes the whole list empty. Indices are read in PCI bus
    order (what ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` gives, and what detprof sets for its workers).
    MIG instances (``MIG-`` entries) are not mapped to GPUs: they end the list.
    """
    if value is None:
        return [replace(g, index=i) for i, g in enumerate(gpus)]
    chosen: list[GpuInfo] = []
    for entry in (part.strip() for part in value.split(",")):
        if re.fullmatch(r"\+?[0-9]+", entry):
            matches = [g for g in gpus if g.nvml_index == int(entry)]
        elif entry[:4].lower() == "gpu-":
            matches = [g for g in gpus if g.uuid and g.uuid.lower().startswith(entry.lower())]
        else:
            matches = []
        if len(matches) != 1:
            break
        if matches[0] in chosen:
            return []
        chosen.append(matches[0])
    return [replace(g, index=i) for i, g in enumerate(chosen)]


# Run in a throw-away process when NVML is missing: lists what CUDA sees without starting CUDA here.
_CUDA_PROBE = """
import json, torch
gpus = []
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        uuid = str(getattr(p, "uuid", "") or "")
        gpus.append({"name": p.name, "memory_total_bytes": int(p.total_memory),
                     "uuid": (uuid if uuid.startswith("GPU-") else "GPU-" + uuid) if uuid else None})
print(json.dumps(gpus))
"""


def nvidia_driver_present() -> bool:
    """True when this machine has an NVIDIA kernel driver (device nodes or /proc entry)."""
    return os.path.exists("/proc/driver/nvidia") or bool(glob.glob("/dev/nvidia[0-9]*"))


def probe_cuda_gpus(python: str = sys.executable) -> list[GpuInfo]:
    """GPUs that CUDA sees, found through torch in a fresh process (for machines without NVML).

    Returns an empty list when torch has no CUDA or the probe fails; ``source`` is ``cuda``."""
    try:
        process = subprocess.run([python, "-c", _CUDA_PROBE], capture_output=True, text=True,
                                 timeout=CUDA_PROBE_TIMEOUT_S, check=False)
        found = json.loads(process.stdout.strip().splitlines()[-1]) if process.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return []
    return [GpuInfo(index=i, name=g["name"], driver=None, memory_total_bytes=g["memory_total_bytes"],
                    sm_clock_max_mhz=None, memory_clock_max_mhz=None, temperature_c=None, uuid=g["uuid"],
                    nvml_index=None, source="cuda") for i, g in enumerate(found)]


def list_gpus(environ: dict[str, str] | None = None,
              cuda_probe: Callable[[], list[GpuInfo]] | None = None) -> list[GpuInfo]:
    """The NVIDIA GPUs this process may use (``CUDA_VISIBLE_DEVICES`` applied), numbered as CUDA does.

    Uses NVML; where NVML is missing but an NVIDIA driver is present, asks torch in a fresh
    process (``cuda_probe``). Empty list on a machine without GPUs.
    """
    env = os.environ if environ is None else environ
    nvml = _nvml()
    if nvml is not None:
        return apply_visible_devices(_nvml_gpus(nvml), env.get(VISIBLE_DEVICES_VAR))
    if cuda_probe is None:
        if not nvidia_driver_present():
            return []
        cuda_probe = probe_cuda_gpus
    return cuda_probe()  # torch already applied CUDA_VISIBLE_DEVICES


def matches_alias(alias: str, gpu_name: str) -> bool:
    """True when ``alias`` is one word, or two adjacent words, of the NVML name.

    "v100" names "Tesla V100-SXM2-16GB", "rtx5000" names "Quadro RTX 5000", "h100" names
    "NVIDIA H100 80GB HBM3"; "a10" does not name an "A100", nor "l40" an "L40S".
    """
    words = [w for w in re.split(r"[\s_\-]+", gpu_name.lower()) if w]
    wanted = re.sub(r"[\s_\-]", "", alias.lower())
    pairs = [a + b for a, b in zip(words, words[1:], strict=False)]
    return wanted in words or wanted in pairs


def select_device(gpu: str | None, gpus: list[GpuInfo] | None = None) -> DeviceChoice:
    """Resolve ``--gpu``: ``auto`` (first GPU, else CPU), ``cpu``, an index, or an alias.

    Raises GpuSelectionError naming what is available when the request cannot be met, and for
    an empty or missing value (``auto`` must be asked for by name).
    """
    request = "auto" if gpu is None else gpu.strip().lower()
    if not request:
        raise GpuSelectionError("--gpu '' is not accepted; use auto, cpu, an index or an alias such as h100")
    cpu = DeviceChoice(kind="cpu", name="cpu")
    if request == "cpu":
        return cpu
    available = list_gpus() if gpus is None else gpus
    if request == "auto":
        return DeviceChoice("cuda", available[0].name, available[0]) if available else cpu
    here = ", ".join([f"{g.index} ({g.name})" for g in available] + ["cpu"])
    if is_whole_number(request):
        index = int(request)
        for g in available:
            if g.index == index:
                return DeviceChoice("cuda", g.name, g)
        raise GpuSelectionError(f"no GPU with index {index}; available: {here}")
    for g in available:
        if matches_alias(request, g.name):
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
    """Samples clocks, temperature, power and clock-event reasons of one GPU (by UUID) in a
    background thread. Use as a context manager around the timed steps; ``summary()`` afterwards.

    Without NVML, or for a GPU NVML cannot find, it samples nothing and says why."""

    uuid: str | None
    interval_s: float = 0.05
    samples: list[ClockSample] = field(default_factory=list)
    unavailable: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> GpuMonitor:
        nvml = _nvml()
        if nvml is None:
            self.unavailable = NO_MONITOR_REASON
            return self
        try:
            handle = nvml.nvmlDeviceGetHandleByUUID(self.uuid)
        except Exception as error:  # NVMLError_NotFound, or no UUID at all
            self.unavailable = f"NVML has no GPU with UUID {self.uuid!r}: {error}"
            return self
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
        summary = summarize_samples(self.samples)
        if self.unavailable:
            summary["unavailable"] = self.unavailable
        return summary


def summarize_samples(samples: list[ClockSample]) -> dict[str, Any]:
    """Summarise monitor samples; ``throttled`` is True when a thermal/hardware slowdown was seen,
    and None (unknown) when there are no samples to tell."""
    if not samples:
        return {"samples": 0, "throttled": None, "reasons": []}
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


def gpus_document() -> GpusDocument:
    """What ``gpus --json`` prints: ``gpus``, one record per GPU NVML sees (memory in bytes, clocks
    in MHz, temperature in °C)."""
    from detprof.documents import DOCUMENT_VERSION

    return {"document_version": DOCUMENT_VERSION, "gpus": [gpu.as_dict() for gpu in list_gpus()]}
