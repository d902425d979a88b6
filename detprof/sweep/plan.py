"""A sweep spec expanded into jobs: one overhead comparison per arch x kernel size x GPU x mode.

Each job carries the key that identifies it in the store: a hash of its full configuration
(framework, GPU type, modes, and the workload and protocol as ``overhead`` resolves them), so that
running a spec again finds what is already measured, whichever spec or machine measured it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from detprof.backend import DEFAULT_FRAMEWORK, backend_for
from detprof.errors import DetprofError
from detprof.gpus import DeviceChoice
from detprof.runner.config import PROFILED_PAIRS, OverheadConfig
from detprof.sweep.spec import SpecError, SweepSpec
from detprof.workload import TOKEN_KINDS, WorkloadRequest
from detprof.zoo import arch_spec


@dataclass(frozen=True)
class SweepJob:
    """One overhead comparison of a sweep: ``modes[1]`` against ``modes[0]`` for ``arch`` on one
    GPU type (a detprof alias such as ``h100``, or ``cpu``)."""

    sweep: str
    arch: str
    gpu: str
    modes: tuple[str, str]
    kernel_size: int | None
    options: tuple[tuple[str, Any], ...]  # build_config keyword arguments (sorted), as the spec gave them
    framework: str = "pytorch"
    user_workload: bool = False  # ``arch`` is a --workload reference, not a zoo arch

    @property
    def label(self) -> str:
        """Short human name: ``medium-cnn k=3 on h100: deterministic/default``."""
        kernel = f" k={self.kernel_size}" if self.kernel_size is not None else ""
        backend = backend_for(self.framework)
        framework = f" ({backend.label})" if backend.name != DEFAULT_FRAMEWORK else ""
        return f"{self.arch}{kernel}{framework} on {self.gpu}: {self.modes[1]}/{self.modes[0]}"

    def config(self, device: DeviceChoice) -> OverheadConfig:
        """The validated overhead configuration of this job on ``device`` (ArgumentError otherwise)."""
        from detprof.runner.config import build_config

        options = dict(self.options)
        named = {"workload": self.arch} if self.user_workload else {"arch": self.arch, "kernel_size": self.kernel_size}
        request = WorkloadRequest(**named, **{key: options.pop(key) for key in WORKLOAD_OPTIONS if key in options})
        return build_config(request, device, modes=self.modes, framework=self.framework, **options)

    def identity(self) -> dict[str, Any]:
        """The full configuration this job is matched on when a sweep resumes: the workload and
        protocol as resolved for the GPU type (defaults filled in), the modes, seed and framework."""
        placeholder = DeviceChoice(kind="cpu" if self.gpu == "cpu" else "cuda", name=self.gpu)
        config = self.config(placeholder)
        return {"framework": self.framework, "gpu": self.gpu, "modes": list(self.modes),
                "workload": config.workload.as_dict(), "protocol": asdict(config.protocol), "seed": config.seed}

    @cached_property
    def key(self) -> str:
        """Hex SHA-256 (first 32 digits) of the canonical JSON of ``identity()``; computed once, as
        identity() builds and validates the whole configuration."""
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]


# Spec key -> build_config keyword, or WorkloadRequest field (WORKLOAD_OPTIONS).
OPTION_NAMES = {"batch_size": "batch_size", "image_size": "image_size", "seq_len": "sequence_length",
                "sdpa_backend": "sdpa_backend", "steps": "timed_steps",
                "warmup": "warmup_steps", "profile_steps": "profile_steps", "repeats": "repeats",
                "precision": "precision", "max_time": "max_time_s", "threads": "threads", "seed": "seed",
                "job_timeout": "job_timeout_s"}
WORKLOAD_OPTIONS = ("batch_size", "image_size", "sequence_length", "sdpa_backend", "batch_norm")
# In a sweep over image networks and language models alike, each size applies where it means something.
NOT_FOR_TOKENS, ONLY_FOR_TOKENS = ("image_size",), ("sequence_length",)
NOT_FOR_WORKLOADS = ("image_size", "sequence_length", "batch_norm")  # a --workload makes its own batches


def plan_sweep(spec: SweepSpec) -> list[SweepJob]:
    """Every job of ``spec`` in run order (GPU type, then arch, then kernel size, then mode; the
    spec's workloads after its archs), each validated as ``overhead`` would validate it (a
    workload's code is checked in a child process); raises SpecError naming the spec and the job."""
    options = {target: getattr(spec, key) for key, target in OPTION_NAMES.items() if getattr(spec, key) is not None}
    jobs = []
    for gpu in spec.gpus:
        for arch in spec.archs:
            arch_info = arch_spec(arch)
            sizes: list[int | None] = list(spec.kernel_sizes) if arch_info.takes_kernel_size else [None]
            extra = {"batch_norm": True} if spec.batch_norm and arch_info.takes_batch_norm else {}
            skipped = NOT_FOR_TOKENS if arch_info.kind in TOKEN_KINDS else ONLY_FOR_TOKENS
            arch_options = {key: value for key, value in options.items() if key not in skipped}
            for kernel_size in sizes:
                for treatment in spec.modes[1:]:
                    jobs.append(_validated(spec, SweepJob(
                        sweep=spec.name, arch=arch, gpu=gpu, modes=(spec.modes[0], treatment), kernel_size=kernel_size,
                        options=tuple(sorted({**arch_options, **extra}.items())), framework=spec.framework)))
        for reference in spec.workloads:
            workload_options = tuple(sorted((k, v) for k, v in options.items() if k not in NOT_FOR_WORKLOADS))
            for treatment in spec.modes[1:]:
                jobs.append(_validated(spec, SweepJob(
                    sweep=spec.name, arch=reference, gpu=gpu, modes=(spec.modes[0], treatment), kernel_size=None,
                    options=workload_options, framework=spec.framework, user_workload=True)))
    return jobs


def _validated(spec: SweepSpec, job: SweepJob) -> SweepJob:
    """``job`` once its configuration resolves as ``overhead`` would resolve it; SpecError naming the
    spec and the job otherwise."""
    try:
        job.identity()
    except DetprofError as error:
        raise SpecError(f"{spec.path}: job {job.label}: {error}") from None
    return job


@dataclass(frozen=True)
class PlanSize:
    """What a sweep plan asks for before anything runs: ``jobs``, the worker processes and
    training steps its fewest pairs take (``processes``, ``training_steps``), and, for adaptive
    jobs, the most pairs they may grow to (``max_processes``) and seconds they may spend
    (``max_measuring_s``, summed over jobs; None without a time budget)."""

    jobs: int
    processes: int
    training_steps: int
    max_processes: int
    max_measuring_s: float | None

    @property
    def large(self) -> bool:
        """Beyond LARGE_PLAN: more than a long day's work on one machine at any step time."""
        return self.processes > LARGE_PLAN["processes"] or self.training_steps > LARGE_PLAN["training_steps"]

    def sentence(self) -> str:
        """The plan in words, e.g. "220 jobs: at least 2,200 worker processes and 220,000 training steps"."""
        grow = (f" (adaptive jobs may grow to {self.max_processes:,} processes" +
                (f" and {self.max_measuring_s / 3600:,.1f} h of measuring)" if self.max_measuring_s else ")")
                if self.max_processes > self.processes else "")
        return (f"{self.jobs:,} jobs: at least {self.processes:,} worker processes and {self.training_steps:,} "
                f"training steps{grow}")


# A plan larger than either is asked about first (--yes goes on without asking). The paper's
# Figure 9 campaigns are a few hundred processes and well under a million steps.
LARGE_PLAN = {"processes": 2_000, "training_steps": 5_000_000}


def plan_size(jobs: list[SweepJob]) -> PlanSize:
    """The size of a plan, from each job's resolved protocol (see PlanSize)."""
    from detprof.runner.config import MAX_PAIRS

    processes = steps = most = 0
    seconds: float | None = 0.0
    for job in jobs:
        protocol = job.identity()["protocol"]
        per_process = protocol["warmup_steps"] + protocol["timed_steps"]
        pairs = protocol["repeats"]
        processes += 2 * pairs
        steps += 2 * pairs * per_process + 2 * min(pairs, PROFILED_PAIRS) * protocol["profile_steps"]
        adaptive = protocol.get("precision") is not None
        most += 2 * (MAX_PAIRS if adaptive else pairs)
        if adaptive and seconds is not None and protocol.get("max_time_s"):
            seconds += float(protocol["max_time_s"])
        elif adaptive:
            seconds = None
    return PlanSize(len(jobs), processes, steps, most, seconds or None)
