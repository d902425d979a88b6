"""The data-loading gate (``check --workers A,B``): a training fed by a real
``torch.utils.data.DataLoader`` with worker processes and shuffling, a new batch every step.

The loader is seeded as PyTorch's reproducibility notes say: its own ``torch.Generator`` for the
shuffle, and a ``worker_init_fn`` that seeds numpy and ``random`` in each worker from the seed
torch gave that worker. A dataset that draws only from those (or nothing random at all) gives the
same batches whatever the number of workers; one that augments from numpy's global generator
without seeding it does not, and the gate shows it. The zoo's examples (and a --workload without
a dataset of its own) are drawn once with the workload's batch maker, then served by the loader.
Imports torch: job processes only.
"""

from __future__ import annotations

import multiprocessing
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from detprof.backends.torch.training import Batch, Training
from detprof.backends.torch.user_workload import moved_to_device

LOADER_SEED_OFFSET = 3  # the shuffle's generator: seed + 3 (the model is seed, the batch seed + 1)


def seed_worker(_worker_id: int) -> None:
    """Seed numpy and ``random`` in a loader worker from the seed torch gave it."""
    import numpy as np

    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def _item(value: Any, index: int) -> Any:
    """Example ``index`` of batched values of any form (a tensor, a tuple or list, a dict)."""
    if isinstance(value, torch.Tensor):
        return value[index]
    if isinstance(value, dict):
        return {key: _item(item, index) for key, item in value.items()}
    return type(value)(_item(item, index) for item in value)


class Examples(Dataset[Any]):
    """Examples drawn up front as one large batch, served one by one (the loader batches them again)."""

    def __init__(self, batch: Any, count: int) -> None:
        self.batch, self.count = batch, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Any:
        return _item(self.batch, index)


def feed_from_loader(training: Training, batch_size: int, workers: int, seed: int, steps: int) -> None:
    """Make ``training`` draw a new batch from a DataLoader with ``workers`` worker processes at every
    step: over the --workload's own dataset, else over ``batch_size`` x ``steps`` examples drawn up
    front from a generator seeded ``seed + 2`` (one epoch per run)."""
    if training.dataset is not None:
        served = batches(training.dataset, batch_size, workers, seed)

        def user_batch() -> Batch:
            moved = moved_to_device(served(), training.device)
            return Batch(moved, moved)

        training.next_batch = user_batch
        return
    count = batch_size * max(steps, 1)
    if training.draw_examples is None:
        raise ValueError("this training has no batch maker to draw the loader's examples with")
    drawn = training.draw_examples(count, torch.Generator().manual_seed(seed + 2))
    pairs = batches(Examples((drawn.inputs, drawn.targets), count), batch_size, workers, seed)

    def zoo_batch() -> Batch:
        inputs, targets = pairs()
        return Batch(inputs, targets).to(training.device)

    training.next_batch = zoo_batch


def batches(dataset: Dataset[Any], batch_size: int, workers: int, seed: int) -> Callable[[], Any]:
    """A function returning the loader's next batch, epoch after epoch (shuffled anew each epoch)."""
    # Workers fork from the job process, as a training script's would on Linux: a user's dataset class,
    # loaded from a file under a module name of detprof's, could not be pickled into a spawned worker.
    context = multiprocessing.get_context("fork") if workers > 0 and sys.platform == "linux" else None
    # No persistent workers: a persistent loader draws its workers' base seed from the generator once,
    # a 0-worker loader once per epoch, so from the second epoch on the two would shuffle differently
    # and the gate would compare a difference of its own making. Both draw once per epoch this way.
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                        generator=torch.Generator().manual_seed(seed + LOADER_SEED_OFFSET),
                        worker_init_fn=seed_worker, persistent_workers=False, multiprocessing_context=context)
    iterator: Iterator[Any] = iter(loader)

    def next_batch() -> Any:
        nonlocal iterator
        try:
            return next(iterator)
        except StopIteration:
            iterator = iter(loader)
            return next(iterator)

    return next_batch
