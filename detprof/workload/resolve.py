"""From a WorkloadRequest to a checked Workload: the device's defaults, the limits every value must
meet, and the backend's own checks, all before any process starts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from detprof.errors import require
from detprof.workload.request import REQUEST_OPTIONS, WorkloadRequest, given_fields
from detprof.workload.spec import Workload
from detprof.zoo.kinds import TOKEN_KINDS, USER_DEFINED

if TYPE_CHECKING:
    from detprof.gpus import DeviceChoice

GPU_BATCH_SIZE = 64  # the paper's
CPU_BATCH_SIZE = 16  # with 2+6 steps per process, 5 to 10 pairs of resnet18 fit the 40 s CPU budget on 2 cores
CPU_IMAGE_SIZE = 64  # pixels; ImageNet-shaped models run at this side on CPU unless told otherwise
CPU_SEQUENCE_LENGTH = 128  # tokens per example for the language models on a CPU unless told otherwise
USER_MODEL_GPU_SIDE = 224  # pixels, a user's model's default input side on a GPU
USER_MODEL_CLASSES = 1000
DEFAULT_ARCH = "resnet18"
MAX_BATCH_SIZE = 65_536
MAX_IMAGE_SIZE = 4_096  # pixels per side
MAX_CLASSES = 1_000_000
MAX_SEQUENCE_LENGTH = 1_048_576  # tokens; a network's own position limit is usually lower


def default_workload(arch: str, on_gpu: bool, batch_size: int | None = None, image_size: int | None = None,
                     kernel_size: int = 3, batch_norm: bool = False, sequence_length: int | None = None) -> Workload:
    """The workload for zoo ``arch`` with device-dependent defaults for what was not given (for the
    token kinds: the arch's sequence length on a GPU, at most CPU_SEQUENCE_LENGTH on a CPU)."""
    from detprof.zoo import arch_spec

    spec = arch_spec(arch)
    device_batch = (spec.gpu_batch_size or GPU_BATCH_SIZE) if on_gpu else (spec.cpu_batch_size or CPU_BATCH_SIZE)
    if spec.kind in TOKEN_KINDS:
        tokens = sequence_length or (spec.sequence_length if on_gpu else
                                     min(int(spec.sequence_length or CPU_SEQUENCE_LENGTH), CPU_SEQUENCE_LENGTH))
        return Workload(arch=spec.name, batch_size=batch_size or device_batch, image_size=0,
                        num_classes=spec.num_classes, kind=spec.kind, sequence_length=tokens)
    if image_size is None:
        image_size = spec.image_size if on_gpu else min(spec.image_size, max(CPU_IMAGE_SIZE, spec.min_image_size))
    return Workload(arch=spec.name, batch_size=batch_size or device_batch, image_size=image_size,
                    num_classes=spec.num_classes, kernel_size=kernel_size, batch_norm=batch_norm, kind=spec.kind)


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
    elements = 1
    for side in workload.shape:
        elements *= side
    input_bytes = workload.batch_size * elements * 4  # float32
    where = f"the {device.name} has" if device.gpu is not None else "this machine has"
    size = "x".join(map(str, workload.shape[1:])) if len(workload.shape) == 3 else "x".join(map(str, workload.shape))
    require(input_bytes <= memory / 4,
            f"--batch-size {workload.batch_size} at {size} is not accepted: its input alone is "
            f"{input_bytes / 2**30:,.1f} GiB and {where} {memory / 2**30:,.1f} GiB; use a smaller --batch-size or "
            "--image-size")


def _check_limits(request: WorkloadRequest) -> None:
    batch_size, image_size, input_shape = request.batch_size, request.image_size, request.input_shape
    require(batch_size is None or 1 <= batch_size <= MAX_BATCH_SIZE,
            f"--batch-size {batch_size} is not accepted; use an integer from 1 to {MAX_BATCH_SIZE:,}")
    require(image_size is None or image_size <= MAX_IMAGE_SIZE,
            f"--image-size {image_size} is not accepted; use at most {MAX_IMAGE_SIZE:,} pixels")
    require(input_shape is None or (len(input_shape) == 3 and all(1 <= d <= MAX_IMAGE_SIZE for d in input_shape)),
            f"--input-shape {input_shape} is not accepted; use C,H,W such as 3,224,224 (each 1 to {MAX_IMAGE_SIZE:,})")
    require(request.num_classes is None or 1 <= request.num_classes <= MAX_CLASSES,
            f"--num-classes {request.num_classes} is not accepted; use 1 to {MAX_CLASSES:,}")


def _user_workload(request: WorkloadRequest, on_gpu: bool) -> Workload:
    model = str(request.model)
    require(request.arch is None, "give --arch or --model, not both")
    require(request.kernel_size is None and not request.batch_norm,
            "--kernel-size and --bn apply to zoo archs, not to --model")
    require(request.sequence_length is None, "--seq-len applies to the zoo's language models; a --model takes images "
                                             "(for token inputs use --workload)")
    side = request.image_size or (USER_MODEL_GPU_SIDE if on_gpu else CPU_IMAGE_SIZE)
    shape = request.input_shape or (3, side, side)
    classes = request.num_classes or USER_MODEL_CLASSES
    return Workload(arch=model, batch_size=request.batch_size or (GPU_BATCH_SIZE if on_gpu else CPU_BATCH_SIZE),
                    image_size=shape[1], num_classes=classes, model_ref=model, input_shape=tuple(shape))


# What a --workload decides itself, by the option a user might still give.
_WORKLOAD_DECIDES = ("image_size", "input_shape", "num_classes", "kernel_size", "batch_norm", "sequence_length")


def _training_step_workload(request: WorkloadRequest, on_gpu: bool) -> Workload:
    from detprof.usercode import parse_reference
    from detprof.workload.user import OPTION, UserWorkloadError

    reference = str(request.workload)
    require(request.arch is None and request.model is None, "give one of --arch, --model and --workload")
    for field in _WORKLOAD_DECIDES:
        require(getattr(request, field) is None,
                f"{REQUEST_OPTIONS[field]} applies to zoo archs and --model; a --workload makes its own batches")
    parse_reference(reference, OPTION, UserWorkloadError)
    return Workload(arch=reference, batch_size=request.batch_size or (GPU_BATCH_SIZE if on_gpu else CPU_BATCH_SIZE),
                    image_size=0, num_classes=0, kind=USER_DEFINED, workload_ref=reference)


def _zoo_workload(request: WorkloadRequest, on_gpu: bool) -> Workload:
    from detprof.zoo import MEDIUM_CNN_KERNEL_SIZES, arch_spec

    spec = arch_spec(request.arch or DEFAULT_ARCH)
    kernel_size, image_size, tokens = request.kernel_size, request.image_size, request.sequence_length
    require(request.input_shape is None, "--input-shape applies to --model; zoo archs take --image-size")
    require(kernel_size is None or spec.takes_kernel_size,
            f"--kernel-size applies to medium-cnn only; {spec.name} has no kernel size to choose")
    require(kernel_size is None or kernel_size in MEDIUM_CNN_KERNEL_SIZES,
            f"--kernel-size {kernel_size} is not accepted; use 1 to 7")
    require(not request.batch_norm or spec.takes_batch_norm,
            f"--bn applies to small-cnn only; {spec.name} has its own normalisation (or none) built in")
    if spec.kind in TOKEN_KINDS:
        require(image_size is None, f"--image-size applies to image networks; {spec.name} takes --seq-len")
        limit = int(spec.max_sequence_length or MAX_SEQUENCE_LENGTH)
        require(tokens is None or 1 <= tokens <= limit,
                f"--seq-len {tokens} is not accepted for {spec.name}; use 1 to {limit:,} tokens")
    else:
        require(tokens is None, f"--seq-len applies to the language models; {spec.name} takes --image-size")
        require(image_size is None or image_size >= spec.min_image_size,
                f"--image-size {image_size} is too small for {spec.name}; use >= {spec.min_image_size}")
        require(image_size is None or image_size % spec.image_multiple == 0,
                f"--image-size {image_size} is not accepted for {spec.name}; use a multiple of {spec.image_multiple}")
    require(request.num_classes is None or spec.num_classes > 0,
            f"--num-classes applies to classifiers and language models; {spec.name} predicts noise, not classes")
    workload = default_workload(spec.name, on_gpu, request.batch_size, image_size, kernel_size or 3,
                                bool(request.batch_norm), tokens)
    return workload if request.num_classes is None else replace(workload, num_classes=request.num_classes)


SDPA_BACKENDS = ("auto", "math", "flash", "efficient", "cudnn")
GPU_ONLY_SDPA_BACKENDS = ("efficient", "cudnn")  # PyTorch has no CPU kernel for them


def _with_attention_backend(workload: Workload, request: WorkloadRequest, on_gpu: bool) -> Workload:
    backend = request.sdpa_backend
    if backend is None:
        return workload
    require(backend in SDPA_BACKENDS, f"--sdpa-backend {backend!r} is not accepted; use one of "
                                      f"{', '.join(SDPA_BACKENDS)}")
    require(on_gpu or backend not in GPU_ONLY_SDPA_BACKENDS,
            f"--sdpa-backend {backend} needs a CUDA GPU; on a CPU use "
            f"{', '.join(b for b in SDPA_BACKENDS if b not in GPU_ONLY_SDPA_BACKENDS)}")
    return replace(workload, sdpa_backend=backend)


def require_compiler(on_gpu: bool) -> None:
    """Raise ArgumentError when torch.compile cannot work here: on a CPU, Inductor builds its
    kernels with a C++ compiler ($CXX, else g++, as torch's own builder looks for it)."""
    import os
    import shutil

    if on_gpu:
        return  # Inductor writes Triton kernels for the GPU; their compiler comes with PyTorch's CUDA wheels
    compiler = os.environ.get("CXX") or "g++"
    require(shutil.which(compiler) is not None,
            f"--compile on a CPU needs a C++ compiler for Inductor, and {compiler!r} is not on PATH; install one "
            "(e.g. apt-get install g++), set $CXX to it, or drop --compile")


def build_workload(request: WorkloadRequest, device: DeviceChoice, framework: str = "pytorch") -> Workload:
    """The checked workload of ``request`` for ``device`` (its defaults for what was not given) in
    ``framework``; raises ArgumentError (or UnknownArchError, a UserCodeError) in one line, before
    anything is measured: a --model or --workload is checked in a child process here. A user's
    model takes ``input_shape`` (C, H, W) or ``image_size`` (3 channels)."""
    from detprof.backend import backend_for, require_request_fields

    _check_limits(request)
    backend = backend_for(framework)
    require_request_fields(backend, given_fields(request), REQUEST_OPTIONS)
    backend.check_workload(request)
    on_gpu = device.kind == "cuda"
    if request.workload is not None:
        workload = _training_step_workload(request, on_gpu)
    elif request.model is not None:
        workload = _user_workload(request, on_gpu)
    else:
        workload = _zoo_workload(request, on_gpu)
    _check_input_fits(workload, device)
    workload = _with_attention_backend(workload, request, on_gpu)
    if request.compiled:
        require_compiler(on_gpu)
        workload = replace(workload, compiled=True)
    backend.check_user_code(workload, on_gpu)  # last: it runs the user's code, in a child process
    return workload
