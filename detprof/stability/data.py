"""Datasets of the stability experiments, loaded from local files only (nothing downloads).

``digits``: the 8x8 handwritten digits that scikit-learn ships inside its package (1,797 images,
10 classes), split once, stratified, with a fixed seed: the split is part of the task, not a
source of noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TASKS = ("digits",)
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


def load_task(task: str, data_dir: str | None = None) -> Dataset:
    """The dataset of a task; raises DatasetError naming the accepted tasks."""
    if task == "digits":
        return load_digits()
    raise DatasetError(f"unknown task {task!r}; accepted: {', '.join(TASKS)}")
