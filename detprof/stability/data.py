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

``celeba``: the standard layout, ``img_align_celeba/`` (JPEG files), ``list_attr_celeba.txt`` (a count,
the 40 attribute names, then one line per image with 40 values of 1 or -1) and
``list_eval_partition.txt`` (image, 0 train / 1 validation / 2 test). Images are centre-cropped to
178x178, resized to 64x64 and decoded once into a cache beside the data, then memory-mapped.
The label is one target attribute (default ``Blond_Hair``, the attribute of the paper's Table 3
counts), or all 40 (``all``: multi-label); the subgroups are Male/Female and Young/Old.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detprof.errors import DetprofError

TASKS = ("digits", "cifar10", "cifar100", "celeba")
CELEBA_IMAGE_SIZE = 64
CELEBA_DEFAULT_TARGET = "Blond_Hair"
ALL_ATTRIBUTES = "all"
CELEBA_FILES = ("img_align_celeba/", "list_attr_celeba.txt", "list_eval_partition.txt")
CIFAR_PIXELS = 32 * 32 * 3
# task -> (folder, train files, test files, label bytes per record, classes)
CIFAR_LAYOUTS = {
    "cifar10": ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"], 1, 10),
    "cifar100": ("cifar-100-binary", ["train.bin"], ["test.bin"], 2, 100),
}
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


class DatasetError(DetprofError, ValueError):
    """A dataset that is missing, malformed, or not one detprof knows."""


@dataclass(frozen=True)
class Dataset:
    """Images as float32 [N, C, H, W] in 0..1, labels as int64 [N]."""

    name: str
    x_train: np.ndarray  # float32 in 0..1, or uint8 in 0..255 (CelebA, to fit in memory)
    y_train: np.ndarray  # [N] class labels, or [N, attributes] of 0/1 when multilabel
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int  # classes, or attributes when multilabel
    multilabel: bool = False
    attributes: tuple[str, ...] = ()
    groups: dict[str, np.ndarray] | None = None  # test-set subgroup masks
    train_groups: dict[str, np.ndarray] | None = None  # the same subgroups on the training set
    target: str | None = None  # CelebA: the attribute learned, or "all"

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


def _celeba_layout() -> str:
    return ("expected --data-dir to hold (or be) a CelebA folder with " + ", ".join(CELEBA_FILES)
            + " in the standard format")


def _read_celeba_lists(root: Path) -> tuple[list[str], tuple[str, ...], np.ndarray, np.ndarray]:
    """(image names, attribute names, labels [N, 40] of 0/1, partition [N]) in the attribute file's order."""
    attr_lines = (root / "list_attr_celeba.txt").read_text().split("\n")
    names = tuple(attr_lines[1].split())
    if len(names) != 40 or "Male" not in names or "Young" not in names:
        raise DatasetError(f"{root / 'list_attr_celeba.txt'}: line 2 must name the 40 attributes (with Male and "
                           f"Young), found {len(names)}; " + _celeba_layout())
    files, values = [], []
    for number, line in enumerate(attr_lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 41 or any(v not in ("1", "-1") for v in fields[1:]):
            raise DatasetError(f"{root / 'list_attr_celeba.txt'} line {number}: expected an image name and 40 "
                               "values of 1 or -1; " + _celeba_layout())
        files.append(fields[0])
        values.append([v == "1" for v in fields[1:]])
    partition = {}
    for number, line in enumerate((root / "list_eval_partition.txt").read_text().split("\n"), start=1):
        fields = line.split()
        if fields:
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise DatasetError(f"{root / 'list_eval_partition.txt'} line {number}: expected an image name and "
                                   "0, 1 or 2; " + _celeba_layout())
            partition[fields[0]] = int(fields[1])
    missing = [f for f in files if f not in partition]
    if missing:
        raise DatasetError(f"{missing[0]} has attributes but no partition entry; " + _celeba_layout())
    return files, names, np.array(values, dtype=np.int64), np.array([partition[f] for f in files])


def _celeba_images(root: Path, files: list[str], size: int) -> np.ndarray:
    """uint8 [N, 3, size, size], decoded once into ``.detprof-cache/`` and memory-mapped afterwards."""
    cache = root / ".detprof-cache" / f"celeba-{size}-{len(files)}.npy"
    if cache.exists():
        return np.load(cache, mmap_mode="r")
    from PIL import Image

    images = np.empty((len(files), 3, size, size), dtype=np.uint8)
    for index, name in enumerate(files):
        path = root / "img_align_celeba" / name
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except (OSError, ValueError) as error:
            raise DatasetError(f"cannot read image {path}: {error}; " + _celeba_layout()) from None
        width, height = rgb.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        square = rgb.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)
        images[index] = np.asarray(square, dtype=np.uint8).transpose(2, 0, 1)
    cache.parent.mkdir(exist_ok=True)
    partial = cache.with_suffix(".partial.npy")
    np.save(partial, images)
    partial.replace(cache)  # a crash mid-write never leaves a cache that looks complete
    return images


def load_celeba(data_dir: str | None, target: str | None = None) -> Dataset:
    """CelebA from its standard layout: train = partition 0, test = partition 2. ``target`` is the
    attribute to learn (default Blond_Hair: binary labels) or ``all`` (the 40 attributes, multi-label)."""
    if not data_dir:
        raise DatasetError("--data-dir is required for celeba; " + _celeba_layout())
    root = Path(data_dir)
    if (root / "celeba").is_dir():
        root = root / "celeba"
    missing = [f for f in CELEBA_FILES if not (root / f.rstrip("/")).exists()]
    if missing:
        raise DatasetError(f"celeba: {', '.join(missing)} not found in {root}; " + _celeba_layout())
    files, names, labels, partition = _read_celeba_lists(root)
    images = _celeba_images(root, files, CELEBA_IMAGE_SIZE)
    train, test = partition == 0, partition == 2
    if not train.any() or not test.any():
        raise DatasetError(f"{root / 'list_eval_partition.txt'} needs images in partition 0 (train) and 2 (test); "
                           + _celeba_layout())
    target = target or CELEBA_DEFAULT_TARGET
    if target != ALL_ATTRIBUTES and target not in names:
        raise DatasetError(f"--target {target!r} is not a CelebA attribute; accepted: {', '.join(names)}, "
                           f"or {ALL_ATTRIBUTES}")
    male, young = names.index("Male"), names.index("Young")

    def subgroups(rows: np.ndarray) -> dict[str, np.ndarray]:
        return {"Male": rows[:, male] == 1, "Female": rows[:, male] == 0,
                "Young": rows[:, young] == 1, "Old": rows[:, young] == 0}

    y_train, y_test = labels[train], labels[test]
    groups, train_groups = subgroups(y_test), subgroups(y_train)
    if target == ALL_ATTRIBUTES:
        return Dataset("celeba", np.asarray(images[train]), y_train, np.asarray(images[test]), y_test,
                       num_classes=len(names), multilabel=True, attributes=names, groups=groups,
                       train_groups=train_groups, target=target)
    column = names.index(target)
    return Dataset("celeba", np.asarray(images[train]), y_train[:, column], np.asarray(images[test]),
                   y_test[:, column], num_classes=2, attributes=names, groups=groups, train_groups=train_groups,
                   target=target)


def as_float_images(batch: np.ndarray) -> np.ndarray:
    """Images as float32 in 0..1 whatever their storage (uint8 for CelebA)."""
    return batch.astype(np.float32) / 255.0 if batch.dtype == np.uint8 else batch


def load_task(task: str, data_dir: str | None = None, target: str | None = None) -> Dataset:
    """The dataset of a task; raises DatasetError naming the accepted tasks, targets or the expected layout.

    ``target`` applies to CelebA only (the attribute to learn, or ``all``)."""
    if task not in TASKS:
        raise DatasetError(f"unknown task {task!r}; accepted: {', '.join(TASKS)}")
    if target is not None and task != "celeba":
        raise DatasetError(f"--target applies to celeba only (its attribute to learn), not to {task}")
    if task == "digits":
        return load_digits()
    if task in CIFAR_LAYOUTS:
        return load_cifar(task, data_dir)
    return load_celeba(data_dir, target)
