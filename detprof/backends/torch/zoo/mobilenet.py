"""MobileNet v1 (Howard et al., 2017, width 1.0) and MobileNet v2 (Sandler et al., 2018, width 1.0).

MobileNet v2 has 3,504,872 parameters at 1000 classes, as the reference implementation.
"""

from __future__ import annotations

from torch import Tensor, nn


def conv_bn_act(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
                act: type[nn.Module] | None = nn.ReLU6) -> nn.Sequential:
    """Conv (no bias) + BatchNorm (+ activation); padding keeps the size at stride 1."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2,
                                         groups=groups, bias=False), nn.BatchNorm2d(out_ch)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


# (output channels, stride) of each depthwise-separable block of MobileNet v1.
MOBILENET_V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


class MobileNetV1(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_act(3, 32, 3, 2, act=nn.ReLU)]
        in_ch = 32
        for out_ch, stride in MOBILENET_V1_BLOCKS:
            layers += [conv_bn_act(in_ch, in_ch, 3, stride, groups=in_ch, act=nn.ReLU),
                       conv_bn_act(in_ch, out_ch, 1, act=nn.ReLU)]
            in_ch = out_ch
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(in_ch, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


# (expansion t, output channels c, repeats n, first stride s) of MobileNet v2, Table 2 of the paper.
MOBILENET_V2_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                         (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn_act(in_ch, hidden, 1))
        layers += [conv_bn_act(hidden, hidden, 3, stride, groups=hidden),
                   conv_bn_act(hidden, out_ch, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_act(3, 32, 3, 2)]
        in_ch = 32
        for expansion, out_ch, repeats, first_stride in MOBILENET_V2_SETTINGS:
            for index in range(repeats):
                layers.append(InvertedResidual(in_ch, out_ch, first_stride if index == 0 else 1, expansion))
                in_ch = out_ch
        layers += [conv_bn_act(in_ch, 1280, 1), nn.AdaptiveAvgPool2d(1)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def mobilenet(name: str, num_classes: int = 1000) -> nn.Module:
    """Return ``mobilenet`` (v1) or ``mobilenet-v2``."""
    return MobileNetV1(num_classes) if name == "mobilenet" else MobileNetV2(num_classes)
