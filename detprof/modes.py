"""Determinism modes: named sets of toggles, each toggle separately addressable.

A mode is applied in two places, because some switches must exist before CUDA starts:
``environment_for`` gives the environment a fresh worker process is started with, and
``apply_toggles`` (detprof.backends.torch.switches) sets the framework flags inside that process
before any model touches the device. This module is the catalog and imports no framework.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from detprof.errors import DetprofError

# cuBLAS needs a fixed workspace to pick reproducible reduction orders (PyTorch's reproducibility notes).
DETERMINISTIC_CUBLAS_WORKSPACE = ":4096:8"
SMALL_CUBLAS_WORKSPACE = ":16:8"  # the other setting those notes allow: less memory, possibly slower


class UnknownModeError(DetprofError, ValueError):
    """Raised for a mode name that is not defined."""


@dataclass(frozen=True)
class Toggles:
    """The individual switches that make PyTorch training (non-)deterministic."""

    deterministic_algorithms: bool = False  # torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn_deterministic: bool = False  # torch.backends.cudnn.deterministic
    cudnn_benchmark: bool = True  # torch.backends.cudnn.benchmark (autotuning)
    cublas_workspace_config: str | None = None  # CUBLAS_WORKSPACE_CONFIG, set before CUDA starts
    # torch.utils.deterministic.fill_uninitialized_memory: with deterministic algorithms on, PyTorch
    # fills every torch.empty() with NaN (floats) or the max integer, so that results never depend on
    # stale memory. It costs a fill kernel per allocation; it has no effect otherwise.
    fill_uninitialized_memory: bool = True
    # TF32 for float32 convolutions and matmuls (torch.backends.cudnn.allow_tf32 and
    # torch.backends.cuda.matmul.allow_tf32); None leaves PyTorch's own defaults. TF32 is not a
    # source of run-to-run noise, but it decides which kernels run: part of what a user may ablate.
    allow_tf32: bool | None = None
    # torch._inductor.config.deterministic, under torch.compile only: Inductor skips the on-device
    # benchmarking (autotuning) whose choice changes numerics. Ignored by eager runs, and where this
    # torch has no such switch (then recorded as None).
    inductor_deterministic: bool = False

    def as_dict(self) -> dict[str, bool | str | None]:
        """The toggles as a plain dict (what is stored with every run)."""
        return asdict(self)

    @property
    def fully_deterministic_request(self) -> bool:
        """True when every toggle asks for determinism."""
        return (self.deterministic_algorithms and self.cudnn_deterministic and not self.cudnn_benchmark
                and self.cublas_workspace_config is not None)


MODES: dict[str, Toggles] = {
    # The framework's fast setting: autotuning on, nothing forced.
    "default": Toggles(),
    # Everything PyTorch offers for reproducibility.
    "deterministic": Toggles(deterministic_algorithms=True, cudnn_deterministic=True, cudnn_benchmark=False,
                             cublas_workspace_config=DETERMINISTIC_CUBLAS_WORKSPACE, inductor_deterministic=True),
    # One toggle at a time, for ablation.
    "no-benchmark": Toggles(cudnn_benchmark=False),
    "cudnn-deterministic": Toggles(cudnn_deterministic=True, cudnn_benchmark=False),
    "torch-deterministic": Toggles(deterministic_algorithms=True,
                                   cublas_workspace_config=DETERMINISTIC_CUBLAS_WORKSPACE),
    # Fully deterministic kernels without the NaN fill of fresh allocations.
    "deterministic-nofill": Toggles(deterministic_algorithms=True, cudnn_deterministic=True, cudnn_benchmark=False,
                                    cublas_workspace_config=DETERMINISTIC_CUBLAS_WORKSPACE,
                                    fill_uninitialized_memory=False, inductor_deterministic=True),
    # For ablation and advice: one switch on its own, and deterministic kernels chosen by autotuning.
    "cudnn-deterministic-only": Toggles(cudnn_deterministic=True),
    "deterministic-algorithms": Toggles(deterministic_algorithms=True, fill_uninitialized_memory=False),
    "deterministic-algorithms-fill": Toggles(deterministic_algorithms=True),
    "cublas-workspace": Toggles(cublas_workspace_config=DETERMINISTIC_CUBLAS_WORKSPACE),
    "cublas-workspace-small": Toggles(cublas_workspace_config=SMALL_CUBLAS_WORKSPACE),
    "inductor-deterministic": Toggles(inductor_deterministic=True),
    # The deterministic mode with Inductor's autotuning kept (under --compile): beside the deterministic
    # mode, what Inductor's deterministic switch costs on its own.
    "deterministic-inductor-autotune": Toggles(deterministic_algorithms=True, cudnn_deterministic=True,
                                               cudnn_benchmark=False,
                                               cublas_workspace_config=DETERMINISTIC_CUBLAS_WORKSPACE),
    "tf32-off": Toggles(allow_tf32=False),
    # The deterministic mode with TF32 off: beside tf32-off, the setting of GPUs without TF32
    # (the paper's V100, P100 and T4), where convolutions and matmuls run in full float32.
    "deterministic-tf32-off": Toggles(deterministic_algorithms=True, cudnn_deterministic=True,
                                      cudnn_benchmark=False, cublas_workspace_config=DETERMINISTIC_CUBLAS_WORKSPACE,
                                      allow_tf32=False, inductor_deterministic=True),
    "deterministic-autotune": Toggles(deterministic_algorithms=True, cudnn_deterministic=True, cudnn_benchmark=True,
                                      cublas_workspace_config=DETERMINISTIC_CUBLAS_WORKSPACE),
}


@dataclass(frozen=True)
class AblationStep:
    """A mode measured against default by ``overhead --ablate``: what it changes, whether it can
    change anything on a CPU (cuDNN, cuBLAS, TF32 and Inductor's benchmarking exist only on a
    GPU), and whether it acts only under ``--compile`` (Inductor's switch)."""

    mode: str
    changes: str
    gpu_only: bool
    needs_compile: bool = False

    def skip_reason(self, on_gpu: bool, compiled: bool) -> str | None:
        """Why this step is not measured here (None: it is)."""
        if self.gpu_only and not on_gpu:
            return ("Inductor benchmarks its kernels only on a GPU" if self.needs_compile else
                    "cuDNN, cuBLAS and TF32 exist only on a GPU")
        if self.needs_compile and not compiled:
            return "Inductor's switch acts under --compile only"
        return None


ABLATION = (
    AblationStep("no-benchmark", "cudnn.benchmark off (no autotuning)", gpu_only=True),
    AblationStep("cudnn-deterministic-only", "cudnn.deterministic on, autotuning kept", gpu_only=True),
    AblationStep("deterministic-algorithms", "use_deterministic_algorithms, no NaN fill", gpu_only=False),
    AblationStep("deterministic-algorithms-fill", "use_deterministic_algorithms with its NaN fill of torch.empty",
                 gpu_only=False),
    AblationStep("cublas-workspace", f"CUBLAS_WORKSPACE_CONFIG={DETERMINISTIC_CUBLAS_WORKSPACE}", gpu_only=True),
    AblationStep("cublas-workspace-small", f"CUBLAS_WORKSPACE_CONFIG={SMALL_CUBLAS_WORKSPACE} (the smaller workspace)",
                 gpu_only=True),
    AblationStep("tf32-off", "TF32 off for convolutions and matmuls", gpu_only=True),
    AblationStep("deterministic-autotune", "every determinism switch, autotuning among deterministic algorithms",
                 gpu_only=True),
    AblationStep("inductor-deterministic", "Inductor's deterministic switch alone (no numerics-changing autotuning)",
                 gpu_only=True, needs_compile=True),
    AblationStep("deterministic-inductor-autotune", "every determinism switch but Inductor's: its autotuning kept",
                 gpu_only=True, needs_compile=True),
    AblationStep("deterministic", "every determinism switch: the deterministic mode", gpu_only=False),
)


def settings_code(toggles: Toggles, threads: int | None = None, on_gpu: bool = True) -> dict[str, list[str]]:
    """What to put in a training script to get ``toggles``: ``environment`` (shell lines, to be set
    before CUDA starts) and ``python`` (lines after ``import torch``), beside a fixed seed. Without
    ``on_gpu`` the switches that act only on a GPU (cuDNN, cuBLAS, TF32, Inductor's autotuning) are
    left out: on a CPU they change nothing, and a recipe should hold only what it needs."""
    environment = [] if toggles.cublas_workspace_config is None or not on_gpu else \
        [f"export CUBLAS_WORKSPACE_CONFIG={toggles.cublas_workspace_config}"]
    python = ["torch.manual_seed(SEED)  # and every other generator your data pipeline uses"]
    if threads is not None:
        python.append(f"torch.set_num_threads({threads})  # the thread count changes CPU results: keep it fixed")
    if toggles.deterministic_algorithms:
        python.append("torch.use_deterministic_algorithms(True)")
        if not toggles.fill_uninitialized_memory:
            python.append("torch.utils.deterministic.fill_uninitialized_memory = False")
    if not on_gpu:
        return {"environment": environment, "python": python}
    if toggles.cudnn_deterministic:
        python.append("torch.backends.cudnn.deterministic = True")
    python.append(f"torch.backends.cudnn.benchmark = {toggles.cudnn_benchmark}")
    if toggles.inductor_deterministic:
        python.append("torch._inductor.config.deterministic = True  # under torch.compile")
    if toggles.allow_tf32 is not None:
        python += [f"torch.backends.cudnn.allow_tf32 = {toggles.allow_tf32}",
                   f"torch.backends.cuda.matmul.allow_tf32 = {toggles.allow_tf32}"]
    return {"environment": environment, "python": python}


def toggles_for(mode: str) -> Toggles:
    """Return the Toggles of a named mode; raises UnknownModeError naming the accepted modes."""
    if mode not in MODES:
        raise UnknownModeError(f"unknown mode {mode!r}; accepted: {', '.join(MODES)}")
    return MODES[mode]


ModePair = tuple[str, str]
"""Two mode names, side A then side B (``("default", "default")`` is the A/A test)."""

DEFAULT_MODE_PAIR: ModePair = ("default", "deterministic")


def require_mode_pair(pair: Sequence[str]) -> ModePair:
    """Return ``pair`` as a ModePair when it is exactly two known mode names; raises
    UnknownModeError naming the bad value and the accepted modes otherwise."""
    if isinstance(pair, str) or len(pair) != 2:
        raise UnknownModeError(f"modes must be two mode names, side A then side B (got {pair!r}); "
                               f"accepted modes: {', '.join(MODES)}")
    for name in pair:
        toggles_for(name)
    return (pair[0], pair[1])


def environment_for(toggles: Toggles, base: dict[str, str], gpu_uuid: str | None = None) -> dict[str, str]:
    """The environment for a worker process: ``base`` with CUBLAS_WORKSPACE_CONFIG set or removed,
    and, for a GPU job, CUDA_VISIBLE_DEVICES narrowed to that GPU's UUID (its ``cuda:0``).

    Removing CUBLAS_WORKSPACE_CONFIG matters as much as setting it: a user's shell setting must
    not leak into the default mode and make it quietly deterministic.
    """
    env = dict(base)
    env.pop("CUBLAS_WORKSPACE_CONFIG", None)
    if toggles.cublas_workspace_config is not None:
        env["CUBLAS_WORKSPACE_CONFIG"] = toggles.cublas_workspace_config
    # A UUID names one GPU whatever the numbering; PCI order keeps indices, where used, NVML's.
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    if gpu_uuid:
        env["CUDA_VISIBLE_DEVICES"] = gpu_uuid
    return env
