"""Datasets of the stability experiments, loaded from local files only (nothing downloads).

``digits``: the 8x8 handwritten digits that scikit-learn ships inside its package (1,797 images,
10 classes), split once, stratified, with a fixed seed: the split is part of the task, not a
source of noise.

``cifar10`` / ``cifar100``: the datasets' standard *binary* distributions (never the pickled
Python version: unpickling a downloaded file can run code). CIFAR-10: ``cifar-10-batches-bin/``
with ``data_batch_1.bin`` to ``data_batch_5.bin`` and ``test_batch.bin``, records of 1 label byte +
3,072 pixel bytes (1,024 red, then green, then blue, row by row). CIFAR-100: ``cifar-100-binary/``
with ``train.bin`` and ``test.bin``, records of a coarse and a fine label byte + 3,072 pixel bytes;
the 100 fine labels are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

TASKS = ("digits", "cifar10", "cifar100")
CIFAR_PIXELS = 32 * 32 * 3
# task -> (folder, train files, test files, label bytes per record, classes)
CIFAR_LAYOUTS = {
    "cifar10": ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"], 1, 10),
    "cifar100": ("cifar-100-binary", ["train.bin"], ["test.bin"], 2, 100),
}
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


class DatasetError(ValueError):
    """A dataset that is missing, malformed, or not one detprof knows."""


@dataclass(frozen=True)
class Dataset:
    """Images as float32 [N, C, H, W] in 0..1, labels as int64 [N]."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[2])


def load_digits() -> Dataset:
    """scikit-learn's digits, 80/20 stratified split (1,437 train, 360 test)."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=DIGITS_TEST_FRACTION,
                                                        stratify=labels, random_state=DIGITS_SPLIT_SEED)
    return Dataset("digits", x_train, y_train, x_test, y_test, num_classes=10)


def _expected_layout(task: str) -> str:
    folder, train, test, label_bytes, _ = CIFAR_LAYOUTS[task]
    return (f"expected --data-dir to hold {folder}/ (or be it) with {', '.join(train + test)}: records of "
            f"{label_bytes} label byte(s) + {CIFAR_PIXELS} pixel bytes (the binary version, not the Python one)")


def _read_cifar_file(path: Path, task: str) -> tuple[np.ndarray, np.ndarray]:
    _, _, _, label_bytes, classes = CIFAR_LAYOUTS[task]
    record = label_bytes + CIFAR_PIXELS
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % record:
        raise DatasetError(f"{path} is not a {task} binary file ({raw.size} bytes, not a multiple of {record}); "
                           + _expected_layout(task))
    records = raw.reshape(-1, record)
    labels = records[:, label_bytes - 1].astype(np.int64)  # CIFAR-100: the fine label is the second byte
    if labels.max() >= classes:
        raise DatasetError(f"{path} has label {labels.max()}, outside 0..{classes - 1}; " + _expected_layout(task))
    images = records[:, label_bytes:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    return images, labels


def load_cifar(task: str, data_dir: str | None) -> Dataset:
    """CIFAR-10 or CIFAR-100 from its binary distribution under ``data_dir``."""
    if not data_dir:
        raise DatasetError(f"--data-dir is required for {task}; " + _expected_layout(task))
    folder, train, test, _, classes = CIFAR_LAYOUTS[task]
    root = Path(data_dir)
    if (root / folder).is_dir():
        root = root / folder
    missing = [name for name in train + test if not (root / name).is_file()]
    if missing:
        raise DatasetError(f"{task}: {', '.join(missing)} not found in {root}; " + _expected_layout(task))
    parts = [_read_cifar_file(root / name, task) for name in train]
    x_test, y_test = _read_cifar_file(root / test[0], task)
    return Dataset(task, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), x_test,
                   y_test, num_classes=classes)


def load_task(task: str, data_dir: str | None = None) -> Dataset:
    """The dataset of a task; raises DatasetError naming the accepted tasks or the expected layout."""
    if task == "digits":
        return load_digits()
    if task in CIFAR_LAYOUTS:
        return load_cifar(task, data_dir)
    raise DatasetError(f"unknown task {task!r}; accepted: {', '.join(TASKS)}")
