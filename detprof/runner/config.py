"""What one overhead measurement runs: the workload, the protocol, and the jobs it expands into.

Defaults: on a GPU the paper's setting (224x224 or the arch's own size, batch 64, 100 timed
steps); on a CPU a smaller stated one, so that nobody mistakes CPU numbers for the paper's.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detprof.errors import require
from detprof.modes import parse_modes, toggles_for
from detprof.zoo import MEDIUM_CNN_KERNEL_SIZES, arch_spec

if TYPE_CHECKING:
    from detprof.gpus import DeviceChoice

# Protocol defaults per device kind. Step counts are optimizer steps; ``repeats`` is the number of
# pairs of processes (one per mode) run before the precision target is checked; ``precision`` is
# the target half-width of the ratio's 95% CI (a fraction); ``max_time_s`` bounds the measurement.
# The CPU figures keep the README's main job (resnet18) under 60 s on 2 cores.
GPU_DEFAULTS: dict[str, Any] = {"batch_size": 64, "warmup_steps": 10, "timed_steps": 100, "profile_steps": 10,
                                 "repeats": 3, "precision": 0.01, "max_time_s": 600.0}
CPU_DEFAULTS: dict[str, Any] = {"batch_size": 16, "warmup_steps": 3, "timed_steps": 10, "profile_steps": 2,
                                 "repeats": 5, "precision": 0.02, "max_time_s": 40.0}
MAX_PAIRS = 50  # never more than this many pairs of processes, whatever the precision asked
# On CPU one intra-op thread by default: with every core busy, background work lands on the measured
# threads and process-to-process spread grows several-fold (see benchmarks/aa_test.py).
CPU_THREADS = 1
CPU_IMAGE_SIZE = 64  # pixels; ImageNet-shaped models run at this side on CPU unless told otherwise


@dataclass(frozen=True)
class Workload:
    """The network and its synthetic input. Image size in pixels (square); ``input_shape`` (C, H, W)
    overrides it. ``model_ref`` (MODULE:FUNCTION) is a user's model instead of the zoo's ``arch``."""

    arch: str
    batch_size: int
    image_size: int
    num_classes: int
    kernel_size: int = 3  # medium-cnn only
    batch_norm: bool = False  # small-cnn only
    model_ref: str | None = None
    input_shape: tuple[int, int, int] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of one input example, (channels, height, width)."""
        return self.input_shape or (3, self.image_size, self.image_size)

    def describe(self) -> str:
        if self.model_ref:
            return f"{self.model_ref}, batch {self.batch_size}, input {'x'.join(map(str, self.shape))}"
        extra = f", kernel {self.kernel_size}" if arch_spec(self.arch).takes_kernel_size else ""
        extra += ", BN" if self.batch_norm else ""
        return f"{self.arch}{extra}, batch {self.batch_size}, {self.image_size}x{self.image_size}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workload:
        """Inverse of ``asdict`` (JSON turns the input shape into a list)."""
        shape = data.get("input_shape")
        return cls(**{**data, "input_shape": tuple(shape) if shape else None})


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
    framework: str = "pytorch"  # or "tensorflow" (detprof.tf.worker, a new interpreter per job)

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
    framework: str = "pytorch"

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> JobSpec:
        return cls(**{**data, "workload": Workload.from_dict(data["workload"]),
                      "protocol": Protocol(**data["protocol"])})


def default_workload(arch: str, on_gpu: bool, batch_size: int | None = None, image_size: int | None = None,
                     kernel_size: int = 3, batch_norm: bool = False) -> Workload:
    """The workload for ``arch`` with device-dependent defaults for what was not given."""
    spec = arch_spec(arch)
    if image_size is None:
        image_size = spec.image_size if on_gpu else min(spec.image_size, max(CPU_IMAGE_SIZE, spec.min_image_size))
    defaults = GPU_DEFAULTS if on_gpu else CPU_DEFAULTS
    return Workload(arch=spec.name, batch_size=batch_size or defaults["batch_size"], image_size=image_size,
                    num_classes=spec.num_classes, kernel_size=kernel_size, batch_norm=batch_norm)


MAX_BATCH_SIZE = 65_536
MAX_IMAGE_SIZE = 4_096  # pixels per side
MAX_CLASSES = 1_000_000


def device_memory_bytes(device: DeviceChoice) -> int | None:
    """Memory of the measuring device in bytes: the GPU's, or the memory available on this machine."""
    if device.gpu is not None:
        return device.gpu.memory_total_bytes
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _check_input_fits(workload: Workload, device: DeviceChoice) -> None:
    """Refuse, before any process starts, a batch whose input alone takes more than a quarter of the
    device's memory: its activations (several times the input, for every layer) cannot fit."""
    memory = device_memory_bytes(device)
    if memory is None:
        return
    channels, height, width = workload.shape
    input_bytes = workload.batch_size * channels * height * width * 4  # float32
    where = f"the {device.name} has" if device.gpu is not None else "this machine has"
    require(input_bytes <= memory / 4,
            f"--batch-size {workload.batch_size} at {height}x{width} is not accepted: its input alone is "
            f"{input_bytes / 2**30:,.1f} GiB and {where} {memory / 2**30:,.1f} GiB; use a smaller --batch-size or "
            "--image-size")


def build_workload(device: DeviceChoice, arch: str | None = None, model: str | None = None,
                   batch_size: int | None = None, image_size: int | None = None, kernel_size: int | None = None,
                   batch_norm: bool | None = None, input_shape: tuple[int, int, int] | None = None,
                   num_classes: int | None = None, framework: str = "pytorch") -> Workload:
    """The validated workload of ``arch`` (a zoo name) or ``model`` (a user's MODULE:FUNCTION), with the
    device's defaults for what was not given; raises ArgumentError (or UnknownArchError, UserModelError)
    in one line, before anything runs. ``input_shape`` is (C, H, W); a user's model needs it or
    ``image_size`` (3 channels then)."""
    on_gpu = device.kind == "cuda"
    require(batch_size is None or 1 <= batch_size <= MAX_BATCH_SIZE,
            f"--batch-size {batch_size} is not accepted; use an integer from 1 to {MAX_BATCH_SIZE:,}")
    require(image_size is None or image_size <= MAX_IMAGE_SIZE,
            f"--image-size {image_size} is not accepted; use at most {MAX_IMAGE_SIZE:,} pixels")
    require(input_shape is None or (len(input_shape) == 3 and all(1 <= d <= MAX_IMAGE_SIZE for d in input_shape)),
            f"--input-shape {input_shape} is not accepted; use C,H,W such as 3,224,224 (each 1 to {MAX_IMAGE_SIZE:,})")
    require(num_classes is None or 1 <= num_classes <= MAX_CLASSES,
            f"--num-classes {num_classes} is not accepted; use 1 to {MAX_CLASSES:,}")
    require(model is None or framework == "pytorch", "--model is a PyTorch module; with --framework tf use --arch")
    if model is not None:
        from detprof.zoo.custom import check_user_model

        require(arch is None, "give --arch or --model, not both")
        require(kernel_size is None and not batch_norm, "--kernel-size and --bn apply to zoo archs, not to --model")
        side = image_size or (224 if on_gpu else CPU_IMAGE_SIZE)
        shape = input_shape or (3, side, side)
        classes = num_classes or 1000
        check_user_model(model, classes)
        defaults = GPU_DEFAULTS if on_gpu else CPU_DEFAULTS
        workload = Workload(arch=model, batch_size=batch_size or defaults["batch_size"], image_size=shape[1],
                            num_classes=classes, model_ref=model, input_shape=tuple(shape))  # type: ignore[arg-type]
        _check_input_fits(workload, device)
        return workload
    if framework == "tensorflow":
        from detprof.tf.zoo import KERAS_MIN_IMAGE_SIZE, TF_ARCHS

        require(arch is not None and arch_spec(arch).name in TF_ARCHS,
                f"--arch {arch} is not available with --framework tf; TensorFlow archs: {', '.join(TF_ARCHS)}")
        minimum = KERAS_MIN_IMAGE_SIZE.get(arch_spec(arch or "").name)
        require(minimum is None or image_size is None or image_size >= minimum,
                f"--image-size {image_size} is too small for Keras' {arch}; use >= {minimum}")
    spec = arch_spec(arch or "resnet18")
    require(input_shape is None, "--input-shape applies to --model; zoo archs take --image-size")
    require(kernel_size is None or spec.takes_kernel_size,
            f"--kernel-size applies to medium-cnn only; {spec.name} has no kernel size to choose")
    require(kernel_size is None or kernel_size in MEDIUM_CNN_KERNEL_SIZES,
            f"--kernel-size {kernel_size} is not accepted; use 1 to 7")
    require(not batch_norm or spec.takes_batch_norm,
            f"--bn applies to small-cnn only; {spec.name} has its own normalisation (or none) built in")
    require(image_size is None or image_size >= spec.min_image_size,
            f"--image-size {image_size} is too small for {spec.name}; use >= {spec.min_image_size}")
    workload = default_workload(spec.name, on_gpu, batch_size, image_size, kernel_size or 3, bool(batch_norm))
    if num_classes is not None:
        workload = replace(workload, num_classes=num_classes)
    _check_input_fits(workload, device)
    return workload


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
    tensorflow = config.framework == "tensorflow"
    jobs = []
    for offset, side in enumerate(sides):
        index, mode = first_index + offset, config.modes[side]
        profile = pair < PROFILED_PAIRS and config.protocol.profile_steps > 0
        # A TensorFlow job's trace is a TensorBoard log folder holding its *.xplane.pb.
        name = f"job{index}-{side}-{mode}" + ("" if tensorflow else ".json.gz")
        trace = f"{trace_dir}/{name}" if profile and trace_dir else None
        if tensorflow:
            from detprof.tf import tf_toggles

            toggles: dict[str, Any] = tf_toggles(mode)
        else:
            toggles = toggles_for(mode).as_dict()
        jobs.append(JobSpec(index=index, mode=mode, side=side, repeat=pair, toggles=toggles,
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


DEFAULT_ARCH = "resnet18"


MAX_SEED = 2**32 - 1  # what every generator detprof seeds accepts
# Limits that no real measurement reaches, so that a typo (--steps 100000000000) is refused instead
# of starting a run that never ends. The paper timed 100 steps per process.
MAX_STEPS = 100_000  # warm-up or timed steps per process
MAX_PROFILE_STEPS = 1_000
MAX_TIME_S = 7 * 24 * 3600.0  # a week: --max-time and --job-timeout


def build_config(arch: str | None, device: DeviceChoice, modes: str = "default,deterministic",
                 kernel_size: int | None = None, batch_norm: bool | None = None, batch_size: int | None = None,
                 image_size: int | None = None,
                 warmup_steps: int | None = None, timed_steps: int | None = None, profile_steps: int | None = None,
                 repeats: int | None = None, threads: int | None = None, seed: int = 0,
                 job_timeout_s: float = 1800.0, precision: float | None = None,
                 max_time_s: float | None = None, model: str | None = None,
                 input_shape: tuple[int, int, int] | None = None, num_classes: int | None = None,
                 framework: str = "pytorch") -> OverheadConfig:
    """Validate the user's choices and fill device-dependent defaults; raises ArgumentError
    (or UnknownArchError / UnknownModeError) naming the bad value and what is accepted.

    ``repeats`` is the number of pairs of processes (one per mode) that always run. The protocol
    is adaptive by default: more pairs follow until the ratio's 95% CI is within ±``precision``
    (a fraction) or ``max_time_s`` seconds are spent. Giving ``repeats`` without ``precision``
    runs exactly that many pairs; ``precision=0`` does the same with the default repeats.
    ``model`` (MODULE:FUNCTION) measures a user's model instead of ``arch`` (see build_workload).
    ``framework`` is ``pytorch`` or ``tensorflow`` (also ``tf``): Keras models in TensorFlow's
    default and op-deterministic modes, each job a new interpreter without torch.
    """
    from detprof.tf import canonical_framework, require_tf_modes

    framework = canonical_framework(framework)
    mode_pair = parse_modes(modes)
    if framework == "tensorflow":
        require_tf_modes(mode_pair)
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
    workload = build_workload(device, arch, model, batch_size, image_size, kernel_size, batch_norm, input_shape,
                              num_classes, framework)
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
    return OverheadConfig(workload=workload, protocol=protocol, modes=(mode_pair[0], mode_pair[1]),
                          device=device.torch_device, gpu_index=device.gpu.index if device.gpu else None,
                          seed=seed, job_timeout_s=job_timeout_s, gpu_uuid=device.gpu.uuid if device.gpu else None,
                          framework=framework)
