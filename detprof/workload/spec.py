"""The workload a backend builds: a request with every default filled in and checked.

A workload has a ``kind`` (detprof.zoo.kinds): what its batches hold and how its loss is
computed. Each backend keeps one batch maker and loss per kind it supports
(``detprof/backends/<name>/training.py``), so a new kind (token batches, several inputs, a model
that returns its own loss, a user's batch maker) is a new value there and an entry in a backend,
not a branch in the runner, check or store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from detprof.zoo.kinds import IMAGE_CLASSIFICATION, TOKEN_KINDS, USER_DEFINED

# Fields added after runs were first stored: written only when set, so that the documents and sweep
# job keys of the workloads that existed before them stay what they were.
_LATER_FIELDS = {"kind": IMAGE_CLASSIFICATION, "sequence_length": None, "sdpa_backend": "auto", "workload_ref": None,
                 "compiled": False}


@dataclass(frozen=True)
class Workload:
    """The network and its synthetic input. Image size in pixels (square); ``input_shape`` (one
    example's shape, (C, H, W) for images) overrides it. ``model_ref`` (MODULE:FUNCTION) is a
    user's model instead of the zoo's ``arch``; ``workload_ref`` a user's whole training step
    (detprof.workload.user: its own batches and loss). For the token kinds, ``sequence_length`` is the
    tokens per example and ``num_classes`` the vocabulary; ``image_size`` is 0 there."""

    arch: str
    batch_size: int
    image_size: int
    num_classes: int
    kernel_size: int = 3  # medium-cnn only
    batch_norm: bool = False  # small-cnn only
    model_ref: str | None = None
    input_shape: tuple[int, ...] | None = None
    kind: str = IMAGE_CLASSIFICATION
    sequence_length: int | None = None
    sdpa_backend: str = "auto"  # the attention backend SDPA may use: auto, math, flash, efficient, cudnn
    workload_ref: str | None = None  # a user's --workload MODULE:FUNCTION (kind user-defined)
    compiled: bool = False  # the model runs through torch.compile (Inductor), forward and backward

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one input example ((channels, height, width) for images, (tokens,) for token
        ids)."""
        if self.kind in TOKEN_KINDS:
            return (int(self.sequence_length or 0),)
        if self.kind == USER_DEFINED:
            return ()  # the workload's own batches: their shapes are its business
        return self.input_shape or (3, self.image_size, self.image_size)

    def describe(self) -> str:
        """One line for people: the network, batch and input (and "compiled" under torch.compile)."""
        return self._described() + (", compiled" if self.compiled else "")

    def _described(self) -> str:
        from detprof.zoo import arch_spec

        if self.workload_ref:
            return f"{self.workload_ref}, batch {self.batch_size}"
        if self.model_ref:
            return f"{self.model_ref}, batch {self.batch_size}, input {'x'.join(map(str, self.shape))}"
        if self.kind in TOKEN_KINDS:
            return (f"{self.arch}, batch {self.batch_size}, sequence {self.sequence_length}, "
                    f"vocabulary {self.num_classes:,}")
        extra = f", kernel {self.kernel_size}" if arch_spec(self.arch).takes_kernel_size else ""
        extra += ", BN" if self.batch_norm else ""
        return f"{self.arch}{extra}, batch {self.batch_size}, {self.image_size}x{self.image_size}"

    def as_dict(self) -> dict[str, Any]:
        """The workload as plain values, as stored and as job specs carry it (the later fields only
        where they are set: see ``_LATER_FIELDS``)."""
        values = asdict(self)
        for name, unset in _LATER_FIELDS.items():
            if values[name] == unset:
                del values[name]
        return values

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workload:
        """Inverse of ``as_dict`` (JSON turns the input shape into a list; older runs have no kind)."""
        shape = data.get("input_shape")
        return cls(**{**data, "input_shape": tuple(shape) if shape else None})
