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
