"""The model zoo: architecture name -> PyTorch module, with per-model metadata beside it.

Names are canonical with ``-`` and are also accepted with ``_``. Every model is written in this
project (torchvision cannot be installed beside the CPU build of torch on the machines we target).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from detprof.zoo.densenet import densenet
from detprof.zoo.efficientnet import efficientnet_b0
from detprof.zoo.inception import inception_v3
from detprof.zoo.mobilenet import mobilenet
from detprof.zoo.paper_cnns import MEDIUM_CNN_KERNEL_SIZES, MediumCNN, SmallCNN
from detprof.zoo.resnet import resnet
from detprof.zoo.vgg import vgg


class UnknownArchError(ValueError):
    """Raised for an architecture name the zoo does not have."""


@dataclass(frozen=True)
class ArchSpec:
    """What the runner needs to know about one architecture.

    ``image_size`` is the paper's / reference input side in pixels; ``min_image_size`` the
    smallest side the network accepts (its downsampling factor).
    """

    name: str
    family: str
    num_classes: int
    image_size: int
    min_image_size: int
    builder: Callable[..., nn.Module]
    framework: str = "pytorch"
    takes_kernel_size: bool = False
    takes_batch_norm: bool = False
    notes: str = ""
    # Ops known to lack a deterministic CUDA implementation in PyTorch (warn_only reports them).
    known_nondeterministic_ops: tuple[str, ...] = field(default_factory=tuple)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Default input shape (channels, height, width)."""
        return (3, self.image_size, self.image_size)


_ADAPTIVE_POOL = ("adaptive_avg_pool2d_backward_cuda",)

ARCHS: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in [
        ArchSpec("vgg16", "vgg", 1000, 224, 32, lambda n, **_: vgg("vgg16", n),
                 known_nondeterministic_ops=_ADAPTIVE_POOL),
        ArchSpec("vgg19", "vgg", 1000, 224, 32, lambda n, **_: vgg("vgg19", n),
                 known_nondeterministic_ops=_ADAPTIVE_POOL),
        ArchSpec("resnet18", "resnet", 1000, 224, 32, lambda n, **_: resnet("resnet18", n),
                 known_nondeterministic_ops=_ADAPTIVE_POOL),
        ArchSpec("resnet50", "resnet", 1000, 224, 32, lambda n, **_: resnet("resnet50", n),
                 known_nondeterministic_ops=_ADAPTIVE_POOL),
        ArchSpec("resnet152", "resnet", 1000, 224, 32, lambda n, **_: resnet("resnet152", n),
                 known_nondeterministic_ops=_ADAPTIVE_POOL),
        ArchSpec("resnet18-cifar", "resnet", 10, 32, 8, lambda n, **_: resnet("resnet18-cifar", n),
                 notes="CIFAR stem (3x3/1 conv, no max pool), as trained in the paper",
                 known_nondeterministic_ops=_ADAPTIVE_POOL),
        ArchSpec("densenet121", "densenet", 1000, 224, 32, lambda n, **_: densenet("densenet121", n),
                 known_nondeterministic_ops=_ADAPTIVE_POOL),
        ArchSpec("densenet201", "densenet", 1000, 224, 32, lambda n, **_: densenet("densenet201", n),
                 known_nondeterministic_ops=_ADAPTIVE_POOL),
        ArchSpec("mobilenet", "mobilenet", 1000, 224, 32, lambda n, **_: mobilenet("mobilenet", n),
                 notes="MobileNet v1, width 1.0", known_nondeterministic_ops=_ADAPTIVE_POOL),
        ArchSpec("mobilenet-v2", "mobilenet", 1000, 224, 32, lambda n, **_: mobilenet("mobilenet-v2", n),
                 known_nondeterministic_ops=_ADAPTIVE_POOL),
        ArchSpec("efficientnet-b0", "efficientnet", 1000, 224, 32, lambda n, **_: efficientnet_b0(n),
                 known_nondeterministic_ops=_ADAPTIVE_POOL),
        ArchSpec("inception-v3", "inception", 1000, 299, 299, lambda n, **_: inception_v3(n),
                 notes="with auxiliary head (loss weight 0.4), which needs the full 299x299 input to train",
                 known_nondeterministic_ops=_ADAPTIVE_POOL),
        ArchSpec("small-cnn", "paper-cnn", 10, 32, 8,
                 lambda n, batch_norm=False, image_size=32, **_: SmallCNN(n, batch_norm, image_size),
                 takes_batch_norm=True, notes="paper Appendix C; --bn adds BatchNorm"),
        ArchSpec("medium-cnn", "paper-cnn", 1000, 224, 64,
                 lambda n, kernel_size=3, **_: MediumCNN(kernel_size, n),
                 takes_kernel_size=True, notes="paper Appendix C; --kernel-size 1..7",
                 known_nondeterministic_ops=_ADAPTIVE_POOL),
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


def build_model(name: str, num_classes: int | None = None, kernel_size: int = 3,
                batch_norm: bool = False, image_size: int | None = None) -> nn.Module:
    """Build a fresh, randomly initialised model.

    ``kernel_size`` applies to medium-cnn (1 to 7), ``batch_norm`` to small-cnn; ``image_size``
    matters only to small-cnn, whose dense layer depends on it.
    """
    spec = arch_spec(name)
    if spec.takes_kernel_size and kernel_size not in MEDIUM_CNN_KERNEL_SIZES:
        raise ValueError(f"kernel size {kernel_size} is not accepted; medium-cnn takes 1 to 7")
    return spec.builder(num_classes or spec.num_classes, kernel_size=kernel_size,
                        batch_norm=batch_norm, image_size=image_size or spec.image_size)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (the figure reference implementations quote)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["ARCHS", "ArchSpec", "UnknownArchError", "arch_spec", "build_model", "canonical_arch",
           "count_parameters", "describe_zoo", "MEDIUM_CNN_KERNEL_SIZES"]


def describe_zoo() -> list[dict[str, object]]:
    """One dict per arch: arch, framework, family, params (at its default classes), input [C, H, W],
    num_classes, options, notes. Models are built on the meta device, so nothing is allocated."""
    import torch

    rows = []
    for spec in ARCHS.values():
        with torch.device("meta"):
            params = count_parameters(build_model(spec.name))
        options = ["--kernel-size 1..7"] if spec.takes_kernel_size else []
        options += ["--bn"] if spec.takes_batch_norm else []
        rows.append({"arch": spec.name, "framework": spec.framework, "family": spec.family, "params": params,
                     "input": list(spec.input_shape), "num_classes": spec.num_classes, "options": options,
                     "notes": spec.notes})
    return rows
