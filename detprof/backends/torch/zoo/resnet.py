"""ResNet-18/50/152 (He et al., 2016) in the ImageNet form, and the CIFAR form of ResNet-18.

ImageNet parameter counts at 1000 classes: resnet18 11,689,512; resnet50 25,557,032;
resnet152 60,192,808. The stride of a bottleneck sits on its 3x3 convolution ("v1.5"), which
changes speed, not parameter count.
"""

from __future__ import annotations

from torch import Tensor, nn


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_ch)]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.body = nn.Sequential(*_conv_bn(in_ch, width, 3, stride), nn.ReLU(inplace=True),
                                  *_conv_bn(width, out_ch, 3))
        self.shortcut = (nn.Sequential(*_conv_bn(in_ch, out_ch, 1, stride))
                         if stride != 1 or in_ch != out_ch else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.body = nn.Sequential(*_conv_bn(in_ch, width, 1), nn.ReLU(inplace=True),
                                  *_conv_bn(width, width, 3, stride), nn.ReLU(inplace=True),
                                  *_conv_bn(width, out_ch, 1))
        self.shortcut = (nn.Sequential(*_conv_bn(in_ch, out_ch, 1, stride))
                         if stride != 1 or in_ch != out_ch else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


RESNET_DEPTHS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}


class ResNet(nn.Module):
    """A ResNet; ``cifar=True`` swaps the 7x7/2 stem and max pool for one 3x3/1 conv (32x32 inputs)."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], counts: list[int],
                 num_classes: int = 1000, cifar: bool = False) -> None:
        super().__init__()
        if cifar:
            self.stem = nn.Sequential(*_conv_bn(3, 64, 3), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
                                      nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, stride=2, padding=1))
        stages: list[nn.Module] = []
        in_ch = 64
        for index, (width, count) in enumerate(zip([64, 128, 256, 512], counts, strict=True)):
            blocks: list[nn.Module] = []
            for position in range(count):
                stride = 2 if index > 0 and position == 0 else 1
                blocks.append(block(in_ch, width, stride))
                in_ch = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))


def resnet(name: str, num_classes: int = 1000) -> ResNet:
    """Return an ImageNet ResNet by name, or ``resnet18-cifar`` (CIFAR stem, default 10 classes)."""
    if name == "resnet18-cifar":
        return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, cifar=True)
    block, counts = RESNET_DEPTHS[name]
    return ResNet(block, counts, num_classes)
