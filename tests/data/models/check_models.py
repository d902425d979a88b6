"""Models whose determinism is known in advance, for ``detprof check`` and ``detprof audit`` tests
(``--model tests/data/models/check_models.py:FUNCTION``). Each function takes ``num_classes``."""

from __future__ import annotations

import os

import torch
from torch import nn


def _head(channels: int, num_classes: int) -> list[nn.Module]:
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]


class Unpool(nn.Module):
    """Max-pool then max-unpool: ``max_unpool2d`` has no deterministic implementation on a CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled, indices = self.pool(x)
        return self.unpool(pooled, indices)


def unpool_net(num_classes: int) -> nn.Module:
    """Conv, then max-pool/max-unpool, then a linear head."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), Unpool(), *_head(8, num_classes))


class UrandomJitter(nn.Module):
    """Adds a jitter drawn from the operating system's entropy pool: no seed can fix it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        jitter = int.from_bytes(os.urandom(4), "little") / 2**32  # in [0, 1)
        return x * (1.0 + 1e-3 * jitter)


def urandom_jitter_net(num_classes: int) -> nn.Module:
    """Conv, a multiplicative jitter from os.urandom, then a linear head."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), UrandomJitter(), *_head(8, num_classes))


class UnseededNoise(nn.Module):
    """Gaussian noise from a generator seeded by os.urandom: the op ``aten::randn`` gets the same
    inputs in both runs and returns different values, so it is the root cause by construction."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator(device=x.device).manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
        return x + 1e-3 * torch.randn(x.shape, generator=generator, device=x.device)


def noise_at_known_op_net(num_classes: int) -> nn.Module:
    """Two convolutions with the unseeded noise between them, in a module named ``body.noise``."""
    body = nn.Sequential()
    body.add_module("conv1", nn.Conv2d(3, 8, 3, padding=1))
    body.add_module("relu", nn.ReLU())
    body.add_module("noise", UnseededNoise())
    body.add_module("conv2", nn.Conv2d(8, 8, 3, padding=1))
    net = nn.Sequential()
    net.add_module("body", body)
    net.add_module("head", nn.Sequential(*_head(8, num_classes)))
    return net


class Elementwise(nn.Module):
    """Only per-element arithmetic and a per-example slice: each output depends on its own example
    alone, through the same operations, whatever the batch."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x.flatten(1)[:, : self.num_classes]) * self.scale + 0.25


def elementwise_net(num_classes: int) -> nn.Module:
    """Batch invariant by construction."""
    return Elementwise(num_classes)


class BatchCentred(nn.Module):
    """Subtracts the batch mean: an example's output depends on the others in its batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(dim=0, keepdim=True)


def batch_centred_net(num_classes: int) -> nn.Module:
    """Not batch invariant by construction (a batch-statistics layer kept in eval mode)."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), BatchCentred(), *_head(8, num_classes))
