"""DenseNet-121 and DenseNet-201 (Huang et al., 2017): growth rate 32, bottleneck width 4x,
compression 0.5. Parameter counts at 1000 classes: 7,978,856 and 20,013,928.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

DENSENET_BLOCKS: dict[str, tuple[int, ...]] = {
    "densenet121": (6, 12, 24, 16),
    "densenet201": (6, 12, 48, 32),
}
GROWTH = 32
BOTTLENECK_FACTOR = 4
STEM_CHANNELS = 64


def _bn_relu_conv(in_ch: int, out_ch: int, kernel: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True),
            nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False)]


class DenseLayer(nn.Module):
    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_bn_relu_conv(in_ch, BOTTLENECK_FACTOR * GROWTH, 1),
                                  *_bn_relu_conv(BOTTLENECK_FACTOR * GROWTH, GROWTH, 3))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.body(x)], dim=1)


class DenseNet(nn.Module):
    def __init__(self, blocks: tuple[int, ...], num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, STEM_CHANNELS, 7, stride=2, padding=3, bias=False),
                                   nn.BatchNorm2d(STEM_CHANNELS), nn.ReLU(inplace=True),
                                   nn.MaxPool2d(3, stride=2, padding=1)]
        channels = STEM_CHANNELS
        for index, count in enumerate(blocks):
            for _ in range(count):
                layers.append(DenseLayer(channels))
                channels += GROWTH
            if index != len(blocks) - 1:
                layers += [*_bn_relu_conv(channels, channels // 2, 1), nn.AvgPool2d(2, stride=2)]
                channels //= 2
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def densenet(name: str, num_classes: int = 1000) -> DenseNet:
    """Return DenseNet-121 or DenseNet-201."""
    return DenseNet(DENSENET_BLOCKS[name], num_classes)
