"""Keras models under detprof's arch names: the ImageNet networks from ``keras.applications``
(randomly initialised, logits out), and the paper's small and medium CNNs (Appendix C) written
in Keras with the same layers as detprof.backends.torch.zoo.paper_cnns.

Parameter counts are Keras' own (kernels_db/keras_zoo.csv, checked against Keras by
tests/test_tf.py). They differ from torchvision's: Keras counts every weight, including
BatchNorm's moving mean and variance, which PyTorch keeps as buffers; Keras' ResNets give their
convolutions biases; Keras' InceptionV3 has no auxiliary classifier.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KERAS_APPLICATIONS = {
    "vgg16": "VGG16", "vgg19": "VGG19", "resnet50": "ResNet50", "resnet152": "ResNet152",
    "densenet121": "DenseNet121", "densenet201": "DenseNet201", "mobilenet": "MobileNet",
    "mobilenet-v2": "MobileNetV2", "efficientnet-b0": "EfficientNetB0", "inception-v3": "InceptionV3",
}
PAPER_CNNS = ("small-cnn", "medium-cnn")
TF_ARCHS = (*KERAS_APPLICATIONS, *PAPER_CNNS)
# keras.applications refuses smaller inputs without ImageNet weights (its obtain_input_shape).
KERAS_MIN_IMAGE_SIZE = {"inception-v3": 75}
SMALL_CNN_CHANNELS = (16, 32, 32)
MEDIUM_CNN_CHANNELS = (16, 32, 64, 128, 256, 512)
COUNTS_FILE = "keras_zoo.csv"


def counts_path() -> Path:
    """kernels_db/keras_zoo.csv in the repository, or its copy inside the installed package."""
    from detprof.kernels.catalog import catalog_path

    return catalog_path().parent / COUNTS_FILE


@dataclass(frozen=True)
class KerasCount:
    arch: str
    application: str
    params: int
    trainable_params: int
    input: tuple[int, int, int]  # (C, H, W), as detprof shows inputs
    num_classes: int


def keras_counts() -> dict[str, KerasCount]:
    """The stored Keras parameter counts per arch (kernels_db/keras_zoo.csv)."""
    rows = csv.DictReader(counts_path().read_text().splitlines())
    return {r["arch"]: KerasCount(r["arch"], r["application"], int(r["params"]), int(r["trainable_params"]),
                                  tuple(int(v) for v in r["input"].split("x")), int(r["num_classes"]))  # type: ignore[arg-type]
            for r in rows}


def _stage(layers: Any, model: list[Any], channels: int, kernel: int, batch_norm: bool) -> None:
    model.append(layers.Conv2D(channels, kernel, padding="same"))
    if batch_norm:
        model.append(layers.BatchNormalization())
    model += [layers.ReLU(), layers.MaxPooling2D(2)]


def build_keras_model(arch: str, num_classes: int, image_size: int, kernel_size: int = 3,
                      batch_norm: bool = False) -> Any:
    """A fresh Keras model of ``arch`` for ``image_size`` x ``image_size`` x 3 inputs (channels last)
    that outputs logits. Imports TensorFlow: call it in a job process only."""
    import keras

    shape = (image_size, image_size, 3)
    if arch in KERAS_APPLICATIONS:
        build = getattr(keras.applications, KERAS_APPLICATIONS[arch])
        return build(weights=None, input_shape=shape, classes=num_classes, classifier_activation=None)
    layers = keras.layers
    stack: list[Any] = [keras.Input(shape=shape)]
    if arch == "small-cnn":
        for channels in SMALL_CNN_CHANNELS:
            _stage(layers, stack, channels, 3, batch_norm)
        stack += [layers.Flatten(), layers.Dense(32), layers.ReLU(), layers.Dense(num_classes)]
    elif arch == "medium-cnn":
        for channels in MEDIUM_CNN_CHANNELS:
            _stage(layers, stack, channels, kernel_size, True)
        stack += [layers.GlobalAveragePooling2D(), layers.Dense(num_classes)]
    else:
        raise ValueError(f"no Keras model for {arch!r}; TensorFlow archs: {', '.join(TF_ARCHS)}")
    return keras.Sequential(stack, name=arch.replace("-", "_"))


# Default input side and classes, as detprof.zoo has them (that module imports torch, so not here).
DEFAULT_INPUT = {"inception-v3": (299, 1000), "small-cnn": (32, 10)}


def default_input(arch: str) -> tuple[int, int]:
    """(image side in pixels, classes) of ``arch`` at its defaults."""
    return DEFAULT_INPUT.get(arch, (224, 1000))


def write_counts(path: Path) -> None:
    """Build every TensorFlow arch at its default input and write its Keras parameter counts
    (``python -m detprof.backends.tf.zoo [PATH]``)."""
    rows = []
    for arch in TF_ARCHS:
        side, classes = default_input(arch)
        model = build_keras_model(arch, classes, side)
        trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
        rows.append({"arch": arch, "application": KERAS_APPLICATIONS.get(arch, "detprof.backends.tf.zoo"),
                     "params": model.count_params(), "trainable_params": trainable,
                     "input": f"3x{side}x{side}", "num_classes": classes})
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    import sys

    write_counts(Path(sys.argv[1]) if len(sys.argv) > 1 else counts_path())
