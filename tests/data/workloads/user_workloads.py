"""Workloads for ``--workload`` tests: working ones of each documented form, and broken ones, each
broken in one way that detprof must report in one line before measuring."""

import sys

import torch
from torch import nn

from detprof.workload import UserWorkload


class Denoiser(nn.Module):
    """Two inputs: an image and a timestep per example."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.time = nn.Embedding(10, 8)
        self.out = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, images: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.conv(images) + self.time(steps)[:, :, None, None])
        return self.out(hidden)


def two_inputs(batch_size, device):
    """A plain tuple; the batch is a tuple (images, timesteps) and the loss reads the images."""

    def make_batch(generator):
        return (torch.randn(batch_size, 3, 8, 8, generator=generator),
                torch.randint(0, 10, (batch_size,), generator=generator))

    return Denoiser(), make_batch, lambda output, batch: nn.functional.mse_loss(output, batch[0])


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(16, 4)

    def forward(self, features, labels=None):
        logits = self.layer(features)
        if labels is None:
            return {"logits": logits}
        return {"logits": logits, "loss": nn.functional.cross_entropy(logits, labels)}


def own_loss(batch_size, device):
    """The typed form with no loss function: the model returns its own loss from a dict batch."""

    def make_batch(generator):
        return {"features": torch.randn(batch_size, 16, generator=generator),
                "labels": torch.randint(0, 4, (batch_size,), generator=generator)}

    return UserWorkload(model=Classifier(), make_batch=make_batch)


def custom_forward(batch_size, device):
    """The typed form with a forward: the batch holds the targets, which the model must not see."""

    def make_batch(generator):
        return torch.randn(batch_size, 16, generator=generator), torch.randint(0, 4, (batch_size,), generator=generator)

    return UserWorkload(model=nn.Linear(16, 4), make_batch=make_batch,
                        loss=lambda logits, batch: nn.functional.cross_entropy(logits, batch[1]),
                        forward=lambda model, batch: model(batch[0]))


def returns_a_model(batch_size, device):
    return nn.Linear(16, 4)


def returns_bad_batch(batch_size, device):
    return nn.Linear(16, 4), lambda generator: ["not", "tensors"], lambda output, batch: output.sum()


def rejects_its_batch(batch_size, device):
    """The model takes 16 features; the batch has 12."""
    return (nn.Linear(16, 4), lambda generator: torch.randn(batch_size, 12, generator=generator),
            lambda output, batch: output.sum())


def loss_per_example(batch_size, device):
    return (nn.Linear(16, 4), lambda generator: torch.randn(batch_size, 16, generator=generator),
            lambda output, batch: output.sum(dim=1))


def no_loss_anywhere(batch_size, device):
    return nn.Linear(16, 4), lambda generator: torch.randn(batch_size, 16, generator=generator)


def exits_zero(batch_size, device):
    sys.exit(0)


class DropoutNet(nn.Module):
    """Dropout in training: after a restart, its masks come from torch's RNG, so a checkpoint that
    forgets that RNG's state makes the first step after the restart differ."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(16, 32)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(32, 4)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(torch.relu(self.hidden(features))))


def _dropout_parts(batch_size):
    def make_batch(generator):
        return torch.randn(batch_size, 16, generator=generator), torch.randint(0, 4, (batch_size,), generator=generator)

    return DropoutNet(), make_batch


def _save_weights(path, model, optimizer):
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)


def _load_weights(path, model, optimizer):
    state = torch.load(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])


def dropout_checkpoint_forgets_rng(batch_size, device):
    """The restart gate's negative control: the user's checkpoint holds the weights and the optimizer,
    but not the RNG state behind the dropout."""
    model, make_batch = _dropout_parts(batch_size)
    return UserWorkload(model=model, make_batch=make_batch, forward=lambda m, batch: m(batch[0]),
                        loss=lambda logits, batch: nn.functional.cross_entropy(logits, batch[1]),
                        save=_save_weights, load=_load_weights)


def dropout_checkpoint_keeps_rng(batch_size, device):
    """The same, with a checkpoint that also keeps torch's RNG state: the restart is bitwise invisible."""

    def save(path, model, optimizer):
        _save_weights(path, model, optimizer)
        torch.save(torch.get_rng_state(), path + ".rng")

    def load(path, model, optimizer):
        _load_weights(path, model, optimizer)
        torch.set_rng_state(torch.load(path + ".rng"))

    model, make_batch = _dropout_parts(batch_size)
    return UserWorkload(model=model, make_batch=make_batch, forward=lambda m, batch: m(batch[0]),
                        loss=lambda logits, batch: nn.functional.cross_entropy(logits, batch[1]),
                        save=save, load=load)


def dropout_detprof_checkpoint(batch_size, device):
    """Dropout with no checkpoint code of its own: detprof's checkpoint (with every RNG) is used."""
    model, make_batch = _dropout_parts(batch_size)
    return UserWorkload(model=model, make_batch=make_batch, forward=lambda m, batch: m(batch[0]),
                        loss=lambda logits, batch: nn.functional.cross_entropy(logits, batch[1]))


def save_without_load(batch_size, device):
    model, make_batch = _dropout_parts(batch_size)
    return UserWorkload(model=model, make_batch=make_batch, forward=lambda m, batch: m(batch[0]),
                        loss=lambda logits, batch: nn.functional.cross_entropy(logits, batch[1]), save=_save_weights)


class _Features(torch.utils.data.Dataset):
    """64 examples of 16 features and a label, made once from a fixed seed."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.features = torch.randn(64, 16, generator=generator)
        self.labels = torch.randint(0, 4, (64,), generator=generator)

    def __len__(self) -> int:
        return 64


class Plain(_Features):
    """The examples as they are: no randomness at all."""

    def __getitem__(self, index):
        return self.features[index], self.labels[index]


class AugmentedFromGlobalNumpy(_Features):
    """Noise from numpy's global generator, which a worker inherits or is seeded with by its own seed:
    the batches then depend on how many workers there are (the data-loading gate's negative control)."""

    def __getitem__(self, index):
        import numpy as np

        noise = torch.from_numpy(np.random.normal(size=16).astype(np.float32))
        return self.features[index] + noise, self.labels[index]


class AugmentedPerExample(_Features):
    """The same augmentation, drawn from a generator seeded by the example's index: the same noise for
    an example whichever worker (or none) loads it."""

    def __getitem__(self, index):
        import numpy as np

        noise = torch.from_numpy(np.random.default_rng(1000 + index).normal(size=16).astype(np.float32))
        return self.features[index] + noise, self.labels[index]


def _loader_workload(dataset, batch_size):
    def make_batch(generator):
        return torch.randn(batch_size, 16, generator=generator), torch.randint(0, 4, (batch_size,), generator=generator)

    return UserWorkload(model=nn.Linear(16, 4), make_batch=make_batch, dataset=dataset,
                        forward=lambda m, batch: m(batch[0]),
                        loss=lambda logits, batch: nn.functional.cross_entropy(logits, batch[1]))


def augments_from_global_numpy(batch_size, device):
    return _loader_workload(AugmentedFromGlobalNumpy(), batch_size)


def augments_per_example(batch_size, device):
    return _loader_workload(AugmentedPerExample(), batch_size)


def plain_dataset(batch_size, device):
    return _loader_workload(Plain(), batch_size)


def empty_batch(batch_size, device):
    """make_batch returns 0 examples: a batch-invariance check would never gather enough."""
    return (nn.Linear(16, 4), lambda generator: torch.randn(0, 16, generator=generator),
            lambda output, batch: output.sum() * 0 + output.new_zeros(()).requires_grad_())


class _Empty(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 0

    def __getitem__(self, index):
        raise IndexError(index)


class _Words(_Features):
    def __getitem__(self, index):
        return "a sentence", self.labels[index]


def empty_dataset(batch_size, device):
    return _loader_workload(_Empty(), batch_size)


def text_dataset(batch_size, device):
    return _loader_workload(_Words(), batch_size)


def integer_batch(batch_size, device):
    """A float model fed integer features: the meta device lets it pass, the training step does not."""
    return (nn.Linear(16, 4), lambda generator: torch.randint(0, 5, (batch_size, 16), generator=generator),
            lambda output, batch: output.sum())
