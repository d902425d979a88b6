"""EfficientNet-B0 (Tan & Le, 2019): MBConv blocks with squeeze-and-excitation and SiLU.

5,288,548 parameters at 1000 classes, as the reference implementation. Stochastic depth
(drop probability rising linearly to 0.2) is kept because it is part of how B0 trains.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from detprof.backends.torch.zoo.mobilenet import conv_bn_act

# (expansion, kernel, first stride, input channels, output channels, repeats) per stage.
EFFICIENTNET_B0_STAGES = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
                          (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
                          (6, 3, 1, 192, 320, 1)]
STOCHASTIC_DEPTH_MAX = 0.2


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        scale = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(nn.functional.silu(self.fc1(scale))))


class MBConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expansion: int,
                 drop_prob: float) -> None:
        super().__init__()
        hidden = in_ch * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn_act(in_ch, hidden, 1, act=nn.SiLU))
        layers += [conv_bn_act(hidden, hidden, kernel, stride, groups=hidden, act=nn.SiLU),
                   SqueezeExcitation(hidden, max(1, in_ch // 4)),
                   conv_bn_act(hidden, out_ch, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        if not self.residual:
            return out
        if self.training and self.drop_prob > 0:
            keep = 1.0 - self.drop_prob
            mask = torch.empty(out.shape[0], 1, 1, 1, device=out.device).bernoulli_(keep)
            out = out * mask / keep
        return x + out


class EfficientNetB0(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        total_blocks = sum(stage[-1] for stage in EFFICIENTNET_B0_STAGES)
        layers: list[nn.Module] = [conv_bn_act(3, 32, 3, 2, act=nn.SiLU)]
        block_index = 0
        for expansion, kernel, stride, in_ch, out_ch, repeats in EFFICIENTNET_B0_STAGES:
            for position in range(repeats):
                drop = STOCHASTIC_DEPTH_MAX * block_index / total_blocks
                layers.append(MBConv(in_ch if position == 0 else out_ch, out_ch, kernel,
                                     stride if position == 0 else 1, expansion, drop))
                block_index += 1
        layers += [conv_bn_act(320, 1280, 1, act=nn.SiLU), nn.AdaptiveAvgPool2d(1)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def efficientnet_b0(num_classes: int = 1000) -> EfficientNetB0:
    """Return EfficientNet-B0."""
    return EfficientNetB0(num_classes)
