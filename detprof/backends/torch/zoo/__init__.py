"""The zoo's PyTorch networks (one module per family), built from the catalog in detprof.zoo.

``build_model`` builds an arch by its catalog row; ``describe_zoo`` counts every arch's parameters
on the meta device. torch is imported when a model is built, not with this package: a --model's
check (``custom``) runs in a child process and the parent that asks for it never loads torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from detprof.zoo import ARCHS, MEDIUM_CNN_KERNEL_SIZES, arch_spec

if TYPE_CHECKING:
    from torch import nn


def build_model(name: str, num_classes: int | None = None, kernel_size: int = 3,
                batch_norm: bool = False, image_size: int | None = None) -> nn.Module:
    """Build a fresh, randomly initialised model.

    ``kernel_size`` applies to medium-cnn (1 to 7), ``batch_norm`` to small-cnn; ``image_size``
    matters only to small-cnn and vit-b16, whose layers depend on it.
    """
    spec = arch_spec(name)
    if spec.takes_kernel_size and kernel_size not in MEDIUM_CNN_KERNEL_SIZES:
        raise ValueError(f"kernel size {kernel_size} is not accepted; medium-cnn takes 1 to 7")
    model: nn.Module = spec.builder(num_classes if num_classes is not None else spec.num_classes,
                                    kernel_size=kernel_size, batch_norm=batch_norm,
                                    image_size=image_size or spec.image_size)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (the figure reference implementations quote)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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
