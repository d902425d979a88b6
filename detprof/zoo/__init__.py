"""The model zoo's catalog: architecture name -> its metadata and builder, importing no framework.

Names are canonical with ``-`` and are also accepted with ``_``. Every model is written in this
project (torchvision cannot be installed beside the CPU build of torch on the machines we target).

The catalog names each builder by its module in detprof.backends.torch.zoo, imported when the
model is built (detprof.backends.torch.zoo.build_model): commands that never build one
(``detprof kernels --trace``, ``diff``, ``report``) import no framework, as TorchBench keeps a
model's metadata beside the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from detprof.errors import DetprofError
from detprof.zoo.kinds import CAUSAL_LM, IMAGE_CLASSIFICATION, MASKED_LM, NOISE_PREDICTION, TOKEN_KINDS
from detprof.zoo.sizes import MEDIUM_CNN_KERNEL_SIZES


class UnknownArchError(DetprofError, ValueError):
    """Raised for an architecture name the zoo does not have."""


@dataclass(frozen=True)
class ArchSpec:
    """What the runner needs to know about one architecture.

    ``image_size`` is the paper's / reference input side in pixels; ``min_image_size`` the
    smallest side the network accepts (its downsampling factor) and ``image_multiple`` what the
    side must be a multiple of (ViT's patch). ``kind`` is the workload kind it trains
    (detprof.zoo.kinds); for the token kinds ``num_classes`` is the vocabulary,
    ``sequence_length`` the tokens per example on a GPU and ``max_sequence_length`` what its
    positions allow. ``gpu_batch_size`` and ``cpu_batch_size`` override the device defaults.
    """

    name: str
    family: str
    num_classes: int
    image_size: int
    min_image_size: int
    builder: Callable[..., Any]
    framework: str = "pytorch"
    takes_kernel_size: bool = False
    takes_batch_norm: bool = False
    notes: str = ""
    # Ops known to lack a deterministic CUDA implementation in PyTorch (warn_only reports them).
    known_nondeterministic_ops: tuple[str, ...] = field(default_factory=tuple)
    kind: str = IMAGE_CLASSIFICATION
    image_multiple: int = 1
    decodes: bool = False  # detprof infer builds its Hugging Face twin (a KV cache, masks, positions)
    sequence_length: int | None = None
    max_sequence_length: int | None = None
    gpu_batch_size: int | None = None
    cpu_batch_size: int | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Default input shape: (channels, height, width), or (tokens,) for token ids."""
        if self.kind in TOKEN_KINDS:
            return (int(self.sequence_length or 0),)
        return (3, self.image_size, self.image_size)


# VGG pools its feature map to 7x7 with nn.AdaptiveAvgPool2d((7, 7)), whose CUDA backward accumulates
# with atomicAdd and has no deterministic implementation. The other networks pool to 1x1, which
# PyTorch computes as a mean (deterministic backward); tests/test_zoo.py checks which aten op each
# network really dispatches.
_ADAPTIVE_POOL = ("adaptive_avg_pool2d_backward_cuda",)


def _builder(module: str, function: str, *leading: str, takes: tuple[str, ...] = ()) -> Callable[..., Any]:
    """A builder calling ``detprof.backends.torch.zoo.<module>.<function>(*leading, num_classes,
    **options)`` with the build options named in ``takes``, the module imported on first use."""

    def build(num_classes: int, **options: object) -> Any:
        built = getattr(import_module(f"detprof.backends.torch.zoo.{module}"), function)
        return built(*leading, num_classes, **{name: options[name] for name in takes})  # type: ignore[no-any-return]

    return build


ARCHS: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in [
        ArchSpec("vgg16", "vgg", 1000, 224, 32, _builder("vgg", "vgg", "vgg16"),
                 known_nondeterministic_ops=_ADAPTIVE_POOL),
        ArchSpec("vgg19", "vgg", 1000, 224, 32, _builder("vgg", "vgg", "vgg19"),
                 known_nondeterministic_ops=_ADAPTIVE_POOL),
        ArchSpec("resnet18", "resnet", 1000, 224, 32, _builder("resnet", "resnet", "resnet18")),
        ArchSpec("resnet50", "resnet", 1000, 224, 32, _builder("resnet", "resnet", "resnet50")),
        ArchSpec("resnet152", "resnet", 1000, 224, 32, _builder("resnet", "resnet", "resnet152")),
        ArchSpec("resnet18-cifar", "resnet", 10, 32, 8, _builder("resnet", "resnet", "resnet18-cifar"),
                 notes="CIFAR stem (3x3/1 conv, no max pool), as trained in the paper"),
        ArchSpec("densenet121", "densenet", 1000, 224, 32, _builder("densenet", "densenet", "densenet121")),
        ArchSpec("densenet201", "densenet", 1000, 224, 32, _builder("densenet", "densenet", "densenet201")),
        ArchSpec("mobilenet", "mobilenet", 1000, 224, 32, _builder("mobilenet", "mobilenet", "mobilenet"),
                 notes="MobileNet v1, width 1.0"),
        ArchSpec("mobilenet-v2", "mobilenet", 1000, 224, 32, _builder("mobilenet", "mobilenet", "mobilenet-v2")),
        ArchSpec("efficientnet-b0", "efficientnet", 1000, 224, 32, _builder("efficientnet", "efficientnet_b0")),
        ArchSpec("inception-v3", "inception", 1000, 299, 299, _builder("inception", "inception_v3"),
                 notes="with auxiliary head (loss weight 0.4), which needs the full 299x299 input to train"),
        ArchSpec("small-cnn", "paper-cnn", 10, 32, 8,
                 _builder("paper_cnns", "small_cnn", takes=("batch_norm", "image_size")),
                 takes_batch_norm=True, notes="paper Appendix C; --bn adds BatchNorm"),
        ArchSpec("medium-cnn", "paper-cnn", 1000, 224, 64, _builder("paper_cnns", "medium_cnn",
                                                                   takes=("kernel_size",)),
                 takes_kernel_size=True, notes="paper Appendix C; --kernel-size 1..7"),
        # Transformers. GPU defaults are common single-GPU training sizes; the CPU defaults are small
        # (batch 4, 128 tokens, 64 px) so that a check finishes in seconds.
        ArchSpec("gpt2-small", "transformer", 50_257, 0, 0, _builder("language", "gpt2_small"), kind=CAUSAL_LM,
                 sequence_length=1_024, max_sequence_length=1_024, gpu_batch_size=8, cpu_batch_size=4,
                 decodes=True, notes="GPT-2 small (GPT2Config()), causal LM, tied embeddings; Zipf-distributed tokens"),
        ArchSpec("bert-base", "transformer", 30_522, 0, 0, _builder("language", "bert_base"), kind=MASKED_LM,
                 sequence_length=512, max_sequence_length=512, gpu_batch_size=16, cpu_batch_size=4,
                 notes="BERT base (BertConfig()), masked LM on 15% of the tokens"),
        ArchSpec("llama-small", "transformer", 32_000, 0, 0, _builder("language", "llama_small"), kind=CAUSAL_LM,
                 sequence_length=2_048, max_sequence_length=2_048, gpu_batch_size=8, cpu_batch_size=4, decodes=True,
                 notes="Llama-style: width 512, 8 layers, 8 query / 2 key-value heads, SwiGLU 1408, RMSNorm, "
                       "rotary, untied output; vocabulary 32,000"),
        ArchSpec("vit-b16", "transformer", 1000, 224, 32,
                 _builder("vision_transformer", "vit_b16", takes=("image_size",)),
                 image_multiple=16, cpu_batch_size=4,
                 notes="ViT-B/16; position embeddings sized for the image side (the count is at 224)"),
        ArchSpec("unet-small", "diffusion", 0, 32, 8, _builder("unet", "unet_small"), kind=NOISE_PREDICTION,
                 image_multiple=4, gpu_batch_size=128,
                 notes="DDPM-style noise prediction: channels 32/64/128, GroupNorm, attention at 8x8 and in the "
                       "middle, bilinear upsampling (no deterministic CUDA backward)",
                 known_nondeterministic_ops=("upsample_bilinear2d_backward_out_cuda",)),
    ]
}


def canonical_arch(name: str) -> str:
    """Return the canonical zoo name for ``name`` (``_`` accepted for ``-``, any case).

    Raises UnknownArchError naming the accepted architectures.
    """
    candidate = name.strip().lower().replace("_", "-")
    if candidate not in ARCHS:
        raise UnknownArchError(f"unknown arch {name!r}; accepted: {', '.join(ARCHS)}")
    return candidate


def arch_spec(name: str) -> ArchSpec:
    """Return the ArchSpec of ``name`` (any accepted spelling)."""
    return ARCHS[canonical_arch(name)]


def kernel_size_of(workload: dict[str, Any]) -> int | None:
    """The convolution kernel size of a stored workload (a dict with ``arch``), for the archs that
    take one; else None."""
    spec = ARCHS.get(str(workload.get("arch", "")))
    size = workload.get("kernel_size")
    return int(size) if spec is not None and spec.takes_kernel_size and size is not None else None


__all__ = ["ARCHS", "ArchSpec", "UnknownArchError", "arch_spec", "canonical_arch", "kernel_size_of",
           "MEDIUM_CNN_KERNEL_SIZES"]
