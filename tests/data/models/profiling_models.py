"""Models that behave differently while the profiler records, for the kernel-coverage check
(``--model tests/data/models/profiling_models.py:FUNCTION``). Each function takes ``num_classes``."""

from __future__ import annotations

import torch
from torch import nn


class SlowWhenProfiled(nn.Module):
    """Identity, except that while torch's profiler is on it runs 400 extra 128x128 matrix products:
    the profiled steps then cost far more than the timed ones, as when a profiler slows a real
    training step or another process shares the device during the profiled pass."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch._C._autograd._profiler_enabled():
            block = torch.ones(128, 128)
            for _ in range(400):
                block = block @ block / 128.0
            x = x + 0.0 * block.mean()
        return x


def slow_when_profiled(num_classes: int) -> nn.Module:
    """A small conv net whose profiled steps are slow (see SlowWhenProfiled)."""
    return nn.Sequential(SlowWhenProfiled(), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, num_classes))
