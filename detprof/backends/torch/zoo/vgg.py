"""VGG-16 and VGG-19 (configurations D and E of Simonyan & Zisserman, 2015), without BatchNorm.

Layer for layer the classic ImageNet definition, so the parameter counts at 1000 classes are
138,357,544 (VGG-16) and 143,667,240 (VGG-19).
"""

from __future__ import annotations

from torch import Tensor, nn

# Output channels per conv layer; "M" is a 2x2 max pool.
VGG_LAYOUTS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """VGG feature stack, 7x7 adaptive average pool and the three-layer classifier."""

    def __init__(self, layout: list[int | str], num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(in_channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                in_channels = item
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def vgg(name: str, num_classes: int = 1000) -> VGG:
    """Return VGG-16 or VGG-19 (``name`` is ``"vgg16"`` or ``"vgg19"``)."""
    return VGG(VGG_LAYOUTS[name], num_classes)
