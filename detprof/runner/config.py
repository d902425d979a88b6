"""What one overhead measurement runs: the workload, the protocol, and the jobs it expands into.

Defaults: on a GPU the paper's setting (224x224 or the arch's own size, batch 64, 100 timed
steps); on a CPU a smaller stated one, so that nobody mistakes CPU numbers for the paper's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from detprof.modes import toggles_for
from detprof.zoo import arch_spec

# Protocol defaults per device kind. Step counts are optimizer steps; ``repeats`` is the number of
# pairs of processes (one per mode) run before the precision target is checked; ``precision`` is
# the target half-width of the ratio's 95% CI (a fraction); ``max_time_s`` bounds the measurement.
# The CPU figures keep the README's main job (resnet18) under 60 s on 2 cores.
GPU_DEFAULTS = {"batch_size": 64, "warmup_steps": 10, "timed_steps": 100, "profile_steps": 10, "repeats": 3,
                "precision": 0.01, "max_time_s": 600.0}
CPU_DEFAULTS = {"batch_size": 16, "warmup_steps": 3, "timed_steps": 10, "profile_steps": 2, "repeats": 5,
                "precision": 0.02, "max_time_s": 40.0}
MAX_PAIRS = 50  # never more than this many pairs of processes, whatever the precision asked
STEP_FIELDS = ("warmup_steps", "timed_steps", "profile_steps", "repeats")
# On CPU one intra-op thread by default: with every core busy, background work lands on the measured
# threads and process-to-process spread grows several-fold (see benchmarks/aa_test.py).
CPU_THREADS = 1
CPU_IMAGE_SIZE = 64  # pixels; ImageNet-shaped models run at this side on CPU unless told otherwise


@dataclass(frozen=True)
class Workload:
    """The network and its synthetic input. Image size in pixels (square)."""

    arch: str
    batch_size: int
    image_size: int
    num_classes: int
    kernel_size: int = 3  # medium-cnn only
    batch_norm: bool = False  # small-cnn only

    def describe(self) -> str:
        extra = f", kernel {self.kernel_size}" if arch_spec(self.arch).takes_kernel_size else ""
        extra += ", BN" if self.batch_norm else ""
        return f"{self.arch}{extra}, batch {self.batch_size}, {self.image_size}x{self.image_size}"


@dataclass(frozen=True)
class Protocol:
    """How many steps of each kind every job runs, and how many pairs of jobs (one per mode).

    ``repeats`` pairs always run. With ``precision`` set, more pairs follow until the ratio's
    95% CI is at most ±precision (a fraction of the ratio), ``max_time_s`` seconds of measuring
    are spent, or ``max_repeats`` pairs ran; with ``precision`` None exactly ``repeats`` run.
    """

    warmup_steps: int
    timed_steps: int
    profile_steps: int
    repeats: int
    cpu_threads: int | None = None  # torch intra-op threads on CPU; None leaves torch's default
    precision: float | None = None
    max_time_s: float | None = None
    max_repeats: int = MAX_PAIRS

    @property
    def adaptive(self) -> bool:
        return self.precision is not None and self.precision > 0


@dataclass(frozen=True)
class OverheadConfig:
    """A whole ``detprof overhead`` measurement: modes[1] is compared with modes[0]."""

    workload: Workload
    protocol: Protocol
    modes: tuple[str, str]
    device: str  # "cpu" or "cuda:N" as the worker sees it ("cuda:0" when pinned by UUID)
    gpu_index: int | None  # the GPU's CUDA ordinal in the user's environment (what --gpu N means)
    seed: int = 0
    job_timeout_s: float = 1800.0
    gpu_uuid: str | None = None  # the worker runs with CUDA_VISIBLE_DEVICES=<uuid>

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JobSpec:
    """One fresh worker process: one mode, one repeat. Serialised to JSON for the worker."""

    index: int
    mode: str
    side: int  # 0 for the baseline (modes[0]), 1 for the treatment (modes[1]); they may share a name
    repeat: int
    toggles: dict[str, Any]
    workload: Workload
    protocol: Protocol
    device: str
    gpu_index: int | None
    seed: int
    profile: bool
    trace_path: str | None
    gpu_uuid: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> JobSpec:
        return cls(**{**data, "workload": Workload(**data["workload"]), "protocol": Protocol(**data["protocol"])})


def default_workload(arch: str, on_gpu: bool, batch_size: int | None = None, image_size: int | None = None,
                     kernel_size: int = 3, batch_norm: bool = False) -> Workload:
    """The workload for ``arch`` with device-dependent defaults for what was not given."""
    spec = arch_spec(arch)
    if image_size is None:
        image_size = spec.image_size if on_gpu else min(spec.image_size, max(CPU_IMAGE_SIZE, spec.min_image_size))
    defaults = GPU_DEFAULTS if on_gpu else CPU_DEFAULTS
    return Workload(arch=spec.name, batch_size=batch_size or defaults["batch_size"], image_size=image_size,
                    num_classes=spec.num_classes, kernel_size=kernel_size, batch_norm=batch_norm)


def default_protocol(on_gpu: bool, **overrides: Any) -> Protocol:
    """Protocol defaults for the device kind (adaptive: precision and time budget set), with any
    non-None override applied."""
    defaults = GPU_DEFAULTS if on_gpu else CPU_DEFAULTS
    base = Protocol(**{k: v for k, v in defaults.items() if k != "batch_size"},
                    cpu_threads=None if on_gpu else CPU_THREADS)
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def plan_pair(config: OverheadConfig, pair: int, first_index: int, trace_dir: str | None) -> list[JobSpec]:
    """The two jobs of pair number ``pair`` (0-based), one per mode, adjacent in time.

    Balanced order: AB for even pairs, BA for odd ones, so that a drift within a pair favours
    neither mode. The jobs of pair 0 also run the profiled pass (after, never during, their
    timed steps). Job indices start at ``first_index``.
    """
    sides = (0, 1) if pair % 2 == 0 else (1, 0)
    jobs = []
    for offset, side in enumerate(sides):
        index, mode = first_index + offset, config.modes[side]
        profile = pair == 0 and config.protocol.profile_steps > 0
        trace = f"{trace_dir}/job{index}-{side}-{mode}.json.gz" if profile and trace_dir else None
        jobs.append(JobSpec(index=index, mode=mode, side=side, repeat=pair, toggles=toggles_for(mode).as_dict(),
                            workload=config.workload, protocol=config.protocol, device=config.device,
                            gpu_index=config.gpu_index, seed=config.seed, profile=profile, trace_path=trace,
                            gpu_uuid=config.gpu_uuid))
    return jobs


def plan_jobs(config: OverheadConfig, trace_dir: str | None, pairs: int | None = None) -> list[JobSpec]:
    """The jobs of the first ``pairs`` pairs (default: ``protocol.repeats``), in run order."""
    jobs: list[JobSpec] = []
    for pair in range(config.protocol.repeats if pairs is None else pairs):
        jobs += plan_pair(config, pair, len(jobs), trace_dir)
    return jobs
