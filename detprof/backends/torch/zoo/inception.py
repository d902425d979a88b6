"""Inception-v3 (Szegedy et al., 2016) with its auxiliary classifier, for 299x299 inputs.

27,161,264 parameters at 1000 classes with the auxiliary head. In training mode the model
returns ``(logits, aux_logits)``; the runner adds the auxiliary loss with weight 0.4.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

KernelSize = int | tuple[int, int]


class ConvBN(nn.Sequential):
    """Conv (no bias) + BatchNorm (eps 1e-3) + ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: KernelSize, stride: int = 1,
                 padding: KernelSize = 0) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=False),
                         nn.BatchNorm2d(out_ch, eps=0.001), nn.ReLU(inplace=True))


def _avg_pool_branch(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), ConvBN(in_ch, out_ch, 1))


class Branches(nn.Module):
    """Runs each branch on the same input and concatenates along channels."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def inception_a(in_ch: int, pool_features: int) -> Branches:
    return Branches(
        ConvBN(in_ch, 64, 1),
        nn.Sequential(ConvBN(in_ch, 48, 1), ConvBN(48, 64, 5, padding=2)),
        nn.Sequential(ConvBN(in_ch, 64, 1), ConvBN(64, 96, 3, padding=1), ConvBN(96, 96, 3, padding=1)),
        _avg_pool_branch(in_ch, pool_features),
    )


def inception_b(in_ch: int) -> Branches:
    return Branches(
        ConvBN(in_ch, 384, 3, stride=2),
        nn.Sequential(ConvBN(in_ch, 64, 1), ConvBN(64, 96, 3, padding=1), ConvBN(96, 96, 3, stride=2)),
        nn.MaxPool2d(3, stride=2),
    )


def _seven(in_ch: int, out_ch: int, horizontal: bool) -> ConvBN:
    """A factorised 1x7 (horizontal) or 7x1 convolution."""
    return ConvBN(in_ch, out_ch, (1, 7) if horizontal else (7, 1), padding=(0, 3) if horizontal else (3, 0))


def inception_c(in_ch: int, c7: int) -> Branches:
    return Branches(
        ConvBN(in_ch, 192, 1),
        nn.Sequential(ConvBN(in_ch, c7, 1), _seven(c7, c7, True), _seven(c7, 192, False)),
        nn.Sequential(ConvBN(in_ch, c7, 1), _seven(c7, c7, False), _seven(c7, c7, True),
                      _seven(c7, c7, False), _seven(c7, 192, True)),
        _avg_pool_branch(in_ch, 192),
    )


def inception_d(in_ch: int) -> Branches:
    return Branches(
        nn.Sequential(ConvBN(in_ch, 192, 1), ConvBN(192, 320, 3, stride=2)),
        nn.Sequential(ConvBN(in_ch, 192, 1), _seven(192, 192, True), _seven(192, 192, False),
                      ConvBN(192, 192, 3, stride=2)),
        nn.MaxPool2d(3, stride=2),
    )


class SplitPair(nn.Module):
    """A 1x3 and a 3x1 convolution on the same input, concatenated (Inception E)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.horizontal = ConvBN(in_ch, out_ch, (1, 3), padding=(0, 1))
        self.vertical = ConvBN(in_ch, out_ch, (3, 1), padding=(1, 0))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.horizontal(x), self.vertical(x)], dim=1)


def inception_e(in_ch: int) -> Branches:
    return Branches(
        ConvBN(in_ch, 320, 1),
        nn.Sequential(ConvBN(in_ch, 384, 1), SplitPair(384, 384)),
        nn.Sequential(ConvBN(in_ch, 448, 1), ConvBN(448, 384, 3, padding=1), SplitPair(384, 384)),
        _avg_pool_branch(in_ch, 192),
    )


class AuxHead(nn.Module):
    def __init__(self, in_ch: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = ConvBN(in_ch, 128, 1)
        self.conv1 = ConvBN(128, 768, 5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(self.conv0(F.avg_pool2d(x, 5, stride=3)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class InceptionV3(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvBN(3, 32, 3, stride=2), ConvBN(32, 32, 3), ConvBN(32, 64, 3, padding=1),
            nn.MaxPool2d(3, stride=2), ConvBN(64, 80, 1), ConvBN(80, 192, 3), nn.MaxPool2d(3, stride=2),
        )
        self.mixed_5_6 = nn.Sequential(
            inception_a(192, 32), inception_a(256, 64), inception_a(288, 64), inception_b(288),
            inception_c(768, 128), inception_c(768, 160), inception_c(768, 160), inception_c(768, 192),
        )
        self.aux = AuxHead(768, num_classes)
        self.mixed_7 = nn.Sequential(inception_d(768), inception_e(1280), inception_e(2048))
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        x = self.mixed_5_6(self.stem(x))
        aux = self.aux(x) if self.training else None
        x = self.mixed_7(x)
        logits = self.fc(self.dropout(F.adaptive_avg_pool2d(x, 1).flatten(1)))
        return (logits, aux) if aux is not None else logits


def inception_v3(num_classes: int = 1000) -> InceptionV3:
    """Return Inception-v3 with the auxiliary classifier."""
    return InceptionV3(num_classes)
