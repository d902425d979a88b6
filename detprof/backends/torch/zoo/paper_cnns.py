"""The two CNNs of the paper's Appendix C (Zhuang et al., "Randomness in Neural Network Training").

small-cnn: 32x32x3 -> 3 x [Conv 3x3, (BN), ReLU, MaxPool 2] with 16/32/32 channels -> 4x4x32
  -> Dense 32 -> Dense 10. BatchNorm is optional: the paper's Figure 3 compares both.
medium-cnn: 224x224x3 -> 6 x [Conv XxX, BN, ReLU, MaxPool 2] with 16/32/64/128/256/512 channels,
  giving 112, 56, 28, 14, 7, 3 -> global average pool -> Dense 1000. X is 1 to 7.

All convolutions are stride 1 with "same" padding, so pooling alone downsamples, as the appendix
says. Even kernel sizes (2, 4, 6) get PyTorch's asymmetric "same" padding, which keeps the table's
output shapes. The appendix table is typeset in two columns whose last rows are ambiguous; we
read GlobalAveragePooling as the medium CNN's and Dense 32 as the small CNN's.
"""

from __future__ import annotations

from torch import Tensor, nn

from detprof.zoo.sizes import MEDIUM_CNN_KERNEL_SIZES

SMALL_CNN_CHANNELS = (16, 32, 32)
MEDIUM_CNN_CHANNELS = (16, 32, 64, 128, 256, 512)


def _stage(in_ch: int, out_ch: int, kernel: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, padding="same")]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    return layers + [nn.ReLU(inplace=True), nn.MaxPool2d(2)]


class SmallCNN(nn.Module):
    """``in_channels``, ``image_size`` and ``dropout`` (before the dense layers; 0 = none, as in the
    paper) adapt it to other small datasets, such as the 8x8 grey digits."""

    def __init__(self, num_classes: int = 10, batch_norm: bool = False, image_size: int = 32, in_channels: int = 3,
                 dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = in_channels
        for out_ch in SMALL_CNN_CHANNELS:
            layers += _stage(in_ch, out_ch, 3, batch_norm)
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(SMALL_CNN_CHANNELS)  # 4 for the paper's 32x32 input
        head: list[nn.Module] = [nn.Flatten()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
        self.classifier = nn.Sequential(*head, nn.Linear(in_ch * max(side, 1) ** 2, 32), nn.ReLU(inplace=True),
                                        nn.Linear(32, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class MediumCNN(nn.Module):
    def __init__(self, kernel_size: int = 3, num_classes: int = 1000) -> None:
        super().__init__()
        if kernel_size not in MEDIUM_CNN_KERNEL_SIZES:
            raise ValueError(f"medium-cnn kernel size must be 1 to 7, got {kernel_size}")
        layers: list[nn.Module] = []
        in_ch = 3
        for out_ch in MEDIUM_CNN_CHANNELS:
            layers += _stage(in_ch, out_ch, kernel_size, batch_norm=True)
            in_ch = out_ch
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(in_ch, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def small_cnn(num_classes: int, batch_norm: bool = False, image_size: int = 32) -> SmallCNN:
    """The paper's small CNN for ``image_size`` inputs (the zoo's small-cnn builder)."""
    return SmallCNN(num_classes, batch_norm, image_size)


def medium_cnn(num_classes: int, kernel_size: int = 3) -> MediumCNN:
    """The paper's medium CNN with ``kernel_size`` convolutions (the zoo's medium-cnn builder)."""
    return MediumCNN(kernel_size, num_classes)
