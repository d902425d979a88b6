"""What one overhead measurement runs: the workload, the protocol, and the jobs it expands into.

Defaults: on a GPU the paper's setting (224x224 or the arch's own size, batch 64, 100 timed
steps); on a CPU a smaller stated one, so that nobody mistakes CPU numbers for the paper's.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from detprof.backend import backend_for, canonical_framework
from detprof.errors import require
from detprof.modes import DEFAULT_MODE_PAIR, ModePair, require_mode_pair
from detprof.workload import Workload, WorkloadRequest, build_workload
from detprof.workload.resolve import CPU_BATCH_SIZE, GPU_BATCH_SIZE

if TYPE_CHECKING:
    from detprof.gpus import DeviceChoice

# Protocol defaults per device kind. Step counts are optimizer steps; ``repeats`` is the number of
# pairs of processes (one per mode) run before the precision target is checked; ``precision`` is
# the target half-width of the ratio's 95% CI (a fraction); ``max_time_s`` bounds the measurement.
# On a CPU, few steps per process and many processes: the spread between processes (memory layout,
# the machine's load) outweighs the spread of steps within one (resnet18, 2 cores: the log ratio's
# spread over pairs came out 4.1% from 10 steps per process and 4.3% from their first 5), and the
# first step is the only slow one, so 2 warm-up and 6 timed steps let twice the pairs into 40 s.
GPU_DEFAULTS: dict[str, Any] = {"batch_size": GPU_BATCH_SIZE, "warmup_steps": 10, "timed_steps": 100,
                                 "profile_steps": 10, "repeats": 3, "precision": 0.01, "max_time_s": 600.0}
CPU_DEFAULTS: dict[str, Any] = {"batch_size": CPU_BATCH_SIZE, "warmup_steps": 2, "timed_steps": 6,
                                 "profile_steps": 2, "repeats": 5, "precision": 0.02, "max_time_s": 40.0}
MAX_PAIRS = 50  # never more than this many pairs of processes, whatever the precision asked
# On CPU one intra-op thread by default: with every core busy, background work lands on the measured
# threads and process-to-process spread grows several-fold (see benchmarks/aa_test.py).
CPU_THREADS = 1


@dataclass(frozen=True)
class Protocol:
    """How many steps of each kind every job runs, and how many pairs of jobs (one per mode).

    With ``precision`` None exactly ``repeats`` pairs run. With ``precision`` set, pairs run until
    the ratio's 95% CI is at most ±precision (a fraction of the ratio) from ``repeats`` pairs on,
    ``max_time_s`` seconds of measuring would be overrun by another pair (checked from 3 pairs on,
    the fewest that give a CI), or ``max_repeats`` pairs ran.
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

    @property
    def budget_floor(self) -> int:
        """Pairs that run however long they take before the time budget may stop the run: the
        fewest that give a CI, or ``repeats`` if fewer."""
        from detprof.stats import MIN_PAIRS_FOR_CI  # numpy and scipy: not before a measurement

        return min(self.repeats, MIN_PAIRS_FOR_CI)


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
    framework: str = "pytorch"  # the backend's canonical name (detprof.backend)
    # The command this measurement is a step of ("ablation", "advise"), so that a report draws each
    # command's chart from its own runs only; None for a plain comparison.
    part_of: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The configuration as plain values (what is stored with every run)."""
        return {**asdict(self), "workload": self.workload.as_dict()}


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
    framework: str = "pytorch"

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> JobSpec:
        return cls(**{**data, "workload": Workload.from_dict(data["workload"]),
                      "protocol": Protocol(**data["protocol"])})


def default_protocol(on_gpu: bool, **overrides: Any) -> Protocol:
    """Protocol defaults for the device kind (adaptive: precision and time budget set), with any
    non-None override applied."""
    defaults = GPU_DEFAULTS if on_gpu else CPU_DEFAULTS
    base = Protocol(**{k: v for k, v in defaults.items() if k != "batch_size"},
                    cpu_threads=None if on_gpu else CPU_THREADS)
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


# Pairs whose jobs also run the profiled pass: enough for a paired CI of the kernel-time ratio
# (stats.MIN_PAIRS_FOR_CI), so that one process's profile never stands alone for its mode.
PROFILED_PAIRS = 3


def plan_pair(config: OverheadConfig, pair: int, first_index: int, trace_dir: str | None) -> list[JobSpec]:
    """The two jobs of pair number ``pair`` (0-based), one per mode, adjacent in time.

    Balanced order: AB for even pairs, BA for odd ones, so that a drift within a pair favours
    neither mode. The jobs of the first PROFILED_PAIRS pairs also run the profiled pass (after,
    never during, their timed steps). Job indices start at ``first_index``.
    """
    sides = (0, 1) if pair % 2 == 0 else (1, 0)
    backend = backend_for(config.framework)
    jobs = []
    for offset, side in enumerate(sides):
        index, mode = first_index + offset, config.modes[side]
        profile = pair < PROFILED_PAIRS and config.protocol.profile_steps > 0
        name = backend.trace_name(f"job{index}-{side}-{mode}")
        trace = f"{trace_dir}/{name}" if profile and trace_dir else None
        jobs.append(JobSpec(index=index, mode=mode, side=side, repeat=pair, toggles=backend.toggles(mode),
                            workload=config.workload, protocol=config.protocol, device=config.device,
                            gpu_index=config.gpu_index, seed=config.seed, profile=profile, trace_path=trace,
                            gpu_uuid=config.gpu_uuid, framework=config.framework))
    return jobs


def plan_jobs(config: OverheadConfig, trace_dir: str | None, pairs: int | None = None) -> list[JobSpec]:
    """The jobs of the first ``pairs`` pairs (default: ``protocol.repeats``), in run order."""
    jobs: list[JobSpec] = []
    for pair in range(config.protocol.repeats if pairs is None else pairs):
        jobs += plan_pair(config, pair, len(jobs), trace_dir)
    return jobs


MAX_SEED = 2**32 - 1  # what every generator detprof seeds accepts
# Limits that no real measurement reaches, so that a typo (--steps 100000000000) is refused instead
# of starting a run that never ends. The paper timed 100 steps per process.
MAX_STEPS = 100_000  # warm-up or timed steps per process
MAX_PROFILE_STEPS = 1_000
MAX_TIME_S = 7 * 24 * 3600.0  # a week: --max-time and --job-timeout


def build_config(request: WorkloadRequest, device: DeviceChoice, modes: ModePair = DEFAULT_MODE_PAIR,
                 warmup_steps: int | None = None, timed_steps: int | None = None, profile_steps: int | None = None,
                 repeats: int | None = None, threads: int | None = None, seed: int = 0,
                 job_timeout_s: float = 1800.0, precision: float | None = None,
                 max_time_s: float | None = None, framework: str = "pytorch") -> OverheadConfig:
    """Validate the user's choices and fill device-dependent defaults; raises ArgumentError
    (or UnknownArchError / UnknownModeError) naming the bad value and what is accepted.

    ``request`` is the workload asked for (see detprof.workload). ``repeats`` is the number of pairs
    of processes (one per mode) that always run. The protocol is adaptive by default: more pairs
    follow until the ratio's 95% CI is within ±``precision`` (a fraction) or ``max_time_s`` seconds
    are spent. Giving ``repeats`` without ``precision`` runs exactly that many pairs;
    ``precision=0`` does the same with the default repeats. ``framework`` is any spelling of a
    backend's name (detprof.backend): pytorch, or tf for Keras models in TensorFlow.
    """
    framework = canonical_framework(framework)
    mode_pair = require_mode_pair(modes)
    backend_for(framework).check_modes(mode_pair)
    require(0 <= seed <= MAX_SEED, f"--seed {seed} is not accepted; use an integer from 0 to {MAX_SEED:,}")
    cpus = os.cpu_count() or 1
    require(threads is None or threads <= cpus,
             f"--threads {threads} is not accepted; this machine has {cpus} CPUs: use 1 to {cpus}")
    require(warmup_steps is None or 0 <= warmup_steps <= MAX_STEPS,
             f"--warmup {warmup_steps} is not accepted; use 0 to {MAX_STEPS:,}")
    require(timed_steps is None or 1 <= timed_steps <= MAX_STEPS,
             f"--steps {timed_steps} is not accepted; use 1 to {MAX_STEPS:,}")
    require(profile_steps is None or 0 <= profile_steps <= MAX_PROFILE_STEPS,
             f"--profile-steps {profile_steps} is not accepted; use 0 to {MAX_PROFILE_STEPS:,} "
             "(0 skips kernel profiling)")
    require(repeats is None or 1 <= repeats <= MAX_PAIRS,
             f"--repeats {repeats} is not accepted; use 1 to {MAX_PAIRS} (pairs of processes)")
    require(threads is None or threads >= 1, f"--threads {threads} is not accepted; use >= 1")
    require(math.isfinite(job_timeout_s) and 0 < job_timeout_s <= MAX_TIME_S,
             f"--job-timeout {job_timeout_s} is not accepted; use seconds > 0, at most {MAX_TIME_S:,.0f} (a week)")
    require(precision is None or 0 <= precision < 1,
             f"--precision {precision} is not accepted; use a fraction such as 0.02 (±2%), or 0 for fixed repeats")
    require(max_time_s is None or (math.isfinite(max_time_s) and 0 < max_time_s <= MAX_TIME_S),
             f"--max-time {max_time_s} is not accepted; use seconds > 0, at most {MAX_TIME_S:,.0f} (a week)")
    on_gpu = device.kind == "cuda"
    require(not request.compiled or warmup_steps != 0,
            "--warmup 0 is not accepted with --compile: the first step compiles, and a timed step must not; use "
            "--warmup 1 or more")
    workload = build_workload(request, device, framework)
    overrides: dict[str, Any] = {"warmup_steps": warmup_steps, "timed_steps": timed_steps,
                                 "profile_steps": profile_steps, "repeats": repeats, "max_time_s": max_time_s}
    if threads is not None:
        overrides["cpu_threads"] = threads
    if precision is not None:
        overrides["precision"] = precision or None
    elif repeats is not None:
        overrides["precision"] = None  # an explicit --repeats alone means exactly that many pairs
    protocol = replace(default_protocol(on_gpu), **{k: v for k, v in overrides.items()
                                                    if v is not None or k == "precision"})
    if not protocol.adaptive:
        protocol = replace(protocol, max_time_s=None)
    return OverheadConfig(workload=workload, protocol=protocol, modes=mode_pair,
                          device=device.torch_device, gpu_index=device.gpu.index if device.gpu else None,
                          seed=seed, job_timeout_s=job_timeout_s, gpu_uuid=device.gpu.uuid if device.gpu else None,
                          framework=framework)
