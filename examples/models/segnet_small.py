"""A small SegNet-style network, as a ``--model`` example: ``detprof audit --model
examples/models/segnet_small.py:segnet_small --input-shape 3,32,32 --num-classes 10``.

SegNet (Badrinarayanan et al., 2015) remembers where each max-pool took its maximum and puts the
values back there in its decoder (``MaxUnpool2d``). That unpooling has no deterministic
implementation in PyTorch, on a CPU as on a GPU, so this network cannot train under
``torch.use_deterministic_algorithms(True)``: ``detprof audit`` names the op and the module.

The ``--model`` contract: ``MODULE:FUNCTION``, where MODULE is a path to a ``.py`` file or an
importable module, and FUNCTION takes ``num_classes`` and returns an ``nn.Module`` that maps a batch
of shape (N, C, H, W), as ``--input-shape C,H,W`` gives, to logits of shape (N, num_classes).
detprof trains it with cross-entropy and SGD on synthetic batches drawn from its seed.
"""

from __future__ import annotations

import torch
from torch import nn


class EncoderDecoder(nn.Module):
    """Two conv stages down with max pooling, two up with max unpooling, then a classifier head."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.down1 = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.down2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU())
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        self.up2 = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.up1 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, where1 = self.pool(self.down1(x))
        x, where2 = self.pool(self.down2(x))
        x = self.up2(self.unpool(x, where2))
        x = self.up1(self.unpool(x, where1))
        return self.head(x.mean(dim=(2, 3)))


def segnet_small(num_classes: int) -> nn.Module:
    """The network for 3-channel images (``--input-shape 3,H,W`` with H and W divisible by 4)."""
    return EncoderDecoder(3, num_classes)
