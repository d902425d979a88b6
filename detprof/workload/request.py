"""What a user asks to train, before any default is filled in: one frozen value that flows from the
command line (or a script) through every API function as one argument."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class WorkloadRequest:
    """The network and its input as asked for; None leaves the choice to the device's defaults.

    ``arch`` is a zoo name, ``model`` a user's image classifier and ``workload`` a user's whole
    training step, both MODULE:FUNCTION (one of the three; none means the default arch).
    ``input_shape`` is one example's shape (C, H, W) for a user's model;
    ``image_size`` the side in pixels of a zoo arch's square images. ``kernel_size`` applies to
    medium-cnn and ``batch_norm`` to small-cnn only; ``sequence_length`` (tokens per example) to
    the language models, whose ``num_classes`` is their vocabulary. ``sdpa_backend`` restricts
    scaled-dot-product attention to one backend (detprof.backends.torch.attention).
    """

    arch: str | None = None
    model: str | None = None
    batch_size: int | None = None
    image_size: int | None = None
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    kernel_size: int | None = None
    batch_norm: bool | None = None
    sequence_length: int | None = None
    sdpa_backend: str | None = None
    workload: str | None = None
    compiled: bool | None = None  # train through torch.compile (--compile)


# How each WorkloadRequest field is spelled on the command line, for a refusal that names it
# (tests/test_workload.py checks that every field has one).
REQUEST_OPTIONS = {"arch": "--arch", "model": "--model", "workload": "--workload", "batch_size": "--batch-size",
                   "image_size": "--image-size", "input_shape": "--input-shape", "num_classes": "--num-classes",
                   "kernel_size": "--kernel-size", "batch_norm": "--bn/--no-bn", "sequence_length": "--seq-len",
                   "sdpa_backend": "--sdpa-backend", "compiled": "--compile"}
REQUEST_FIELDS = frozenset(field.name for field in fields(WorkloadRequest))
# A value that asks for nothing beyond the defaults: an option given with it changes nothing.
_NEUTRAL: dict[str, object] = {"sdpa_backend": "auto", "compiled": False}


def given_fields(request: WorkloadRequest | None) -> list[str]:
    """The fields ``request`` sets to something other than the default (None, or a neutral value
    such as ``sdpa_backend="auto"``), in declaration order."""
    if request is None:
        return []
    return [name for name in REQUEST_OPTIONS if getattr(request, name) is not None
            and getattr(request, name) != _NEUTRAL.get(name, None)]
