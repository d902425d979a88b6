"""The one PyTorch training step that ``overhead`` jobs time and ``check`` and ``audit`` runs
record: the workload's model, a synthetic batch made by the workload kind's batch maker, and SGD
with momentum (detprof.workload.RECIPE).

The model is initialised and the batch drawn on the CPU from the seed, then moved, so that two runs
start from the same bits on any device. ``forward_loss`` calls the model on a batch of any form
(one tensor, a tuple of inputs, or a dict of keyword inputs) and takes its loss: the model's own
(a dict with ``loss``), or cross-entropy on the targets (main and auxiliary logits for a model
that returns both). Imports torch: job processes only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from detprof.workload import IMAGE_CLASSIFICATION, RECIPE, Workload


@dataclass
class Batch:
    """One synthetic batch: ``inputs`` as the model takes them (a tensor, a tuple, or a dict of
    keyword arguments) and ``targets`` (None when the model computes its own loss)."""

    inputs: Any
    targets: Any

    def to(self, device: torch.device) -> Batch:
        return Batch(_moved(self.inputs, device), _moved(self.targets, device))


def _moved(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: _moved(item, device) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(_moved(item, device) for item in value)
    return value


def image_batch(workload: Workload, generator: torch.Generator) -> Batch:
    """Normal images of the workload's shape and uniform class targets."""
    inputs = torch.randn(workload.batch_size, *workload.shape, generator=generator)
    targets = torch.randint(0, workload.num_classes, (workload.batch_size,), generator=generator)
    return Batch(inputs, targets)


# One batch maker per workload kind this backend trains (see detprof.workload.spec).
BATCH_MAKERS: dict[str, Callable[[Workload, torch.Generator], Batch]] = {IMAGE_CLASSIFICATION: image_batch}


def workload_model(workload: Workload) -> torch.nn.Module:
    """A fresh, randomly initialised model of the workload (on the CPU): the zoo's arch, or the user's."""
    if workload.model_ref:
        from detprof.zoo.custom import build_user_model

        return build_user_model(workload.model_ref, workload.num_classes)
    from detprof.zoo import build_model

    return build_model(workload.arch, workload.num_classes, kernel_size=workload.kernel_size,
                       batch_norm=workload.batch_norm, image_size=workload.image_size)


def make_batch(workload: Workload, seed: int) -> Batch:
    """The workload's synthetic batch, drawn on the CPU from its own generator seeded with ``seed``."""
    return BATCH_MAKERS[workload.kind](workload, torch.Generator().manual_seed(seed))


def forward_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """The model's loss on ``batch`` (see the module's docstring for the forms it takes)."""
    inputs = batch.inputs
    if isinstance(inputs, dict):
        out = model(**inputs)
    elif isinstance(inputs, tuple):
        out = model(*inputs)
    else:
        out = model(inputs)
    if isinstance(out, dict) and "loss" in out:
        return out["loss"]
    cross_entropy = torch.nn.functional.cross_entropy
    if isinstance(out, tuple):  # main and auxiliary logits (Inception-v3)
        return cross_entropy(out[0], batch.targets) + RECIPE.aux_loss_weight * cross_entropy(out[1], batch.targets)
    return cross_entropy(out, batch.targets)


def main_output(out: Any) -> torch.Tensor:
    """The logits of a model's output (the main head of a model with an auxiliary one)."""
    return out[0] if isinstance(out, tuple) else out


@dataclass
class Training:
    """A model on its device, its batch there, and its optimizer."""

    model: torch.nn.Module
    batch: Batch
    optimizer: torch.optim.Optimizer
    device: torch.device

    def loss(self) -> torch.Tensor:
        """Forward pass and loss (no backward)."""
        return forward_loss(self.model, self.batch)

    def step(self) -> torch.Tensor:
        """One SGD step; returns the loss, detached (no device synchronisation)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss()
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def build_training(workload: Workload, seed: int, device: torch.device) -> Training:
    """The workload's model (initialised from ``seed``), its batch (from ``seed + 1``) and an SGD
    optimizer, all on ``device``, the model in training mode."""
    torch.manual_seed(seed)
    model = workload_model(workload).to(device).train()
    batch = make_batch(workload, seed + 1).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=RECIPE.learning_rate, momentum=RECIPE.momentum)
    return Training(model, batch, optimizer, device)
