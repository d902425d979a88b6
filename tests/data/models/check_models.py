"""Models whose determinism is known in advance, for ``detprof check`` and ``detprof audit`` tests
(``--model tests/data/models/check_models.py:FUNCTION``). Each function takes ``num_classes``."""

from __future__ import annotations

import os

import torch
from torch import nn


def _head(channels: int, num_classes: int) -> list[nn.Module]:
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]


class Unpool(nn.Module):
    """Max-pool then max-unpool: ``max_unpool2d`` has no deterministic implementation on a CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled, indices = self.pool(x)
        return self.unpool(pooled, indices)


def unpool_net(num_classes: int) -> nn.Module:
    """Conv, then max-pool/max-unpool, then a linear head."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), Unpool(), *_head(8, num_classes))


class UrandomJitter(nn.Module):
    """Adds a jitter drawn from the operating system's entropy pool: no seed can fix it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        jitter = int.from_bytes(os.urandom(4), "little") / 2**32  # in [0, 1)
        return x * (1.0 + 1e-3 * jitter)


def urandom_jitter_net(num_classes: int) -> nn.Module:
    """Conv, a multiplicative jitter from os.urandom, then a linear head."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), UrandomJitter(), *_head(8, num_classes))


class UnseededNoise(nn.Module):
    """Gaussian noise from a generator seeded by os.urandom: the op ``aten::randn`` gets the same
    inputs in both runs and returns different values, so it is the root cause by construction."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator(device=x.device).manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
        return x + 1e-3 * torch.randn(x.shape, generator=generator, device=x.device)


def noise_at_known_op_net(num_classes: int) -> nn.Module:
    """Two convolutions with the unseeded noise between them, in a module named ``body.noise``."""
    body = nn.Sequential()
    body.add_module("conv1", nn.Conv2d(3, 8, 3, padding=1))
    body.add_module("relu", nn.ReLU())
    body.add_module("noise", UnseededNoise())
    body.add_module("conv2", nn.Conv2d(8, 8, 3, padding=1))
    net = nn.Sequential()
    net.add_module("body", body)
    net.add_module("head", nn.Sequential(*_head(8, num_classes)))
    return net


class Elementwise(nn.Module):
    """Only per-element arithmetic and a per-example slice: each output depends on its own example
    alone, through the same operations, whatever the batch."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x.flatten(1)[:, : self.num_classes]) * self.scale + 0.25


def elementwise_net(num_classes: int) -> nn.Module:
    """Batch invariant by construction."""
    return Elementwise(num_classes)


class BatchCentred(nn.Module):
    """Subtracts the batch mean: an example's output depends on the others in its batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(dim=0, keepdim=True)


def batch_centred_net(num_classes: int) -> nn.Module:
    """Not batch invariant by construction (a batch-statistics layer kept in eval mode)."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), BatchCentred(), *_head(8, num_classes))


class NanBesideNoise(nn.Module):
    """A buffer holding a NaN beside a value from the operating system's entropy pool (or, as the
    control, a fixed value): the noise must be seen although a NaN sits next to it."""

    def __init__(self, noisy: bool) -> None:
        super().__init__()
        self.noisy = noisy
        self.register_buffer("stat", torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fresh = int.from_bytes(os.urandom(4), "little") / 2**32 if self.noisy else 0.5
        self.stat.copy_(torch.tensor([float("nan"), fresh]))
        return x


def nan_beside_noise_net(num_classes: int) -> nn.Module:
    """Not reproducible (the buffer's second element is fresh noise) although the loss and weights are."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), NanBesideNoise(noisy=True), *_head(8, num_classes))


def nan_beside_constant_net(num_classes: int) -> nn.Module:
    """Reproducible, but a NaN sits in a buffer: the check cannot vouch for it (inconclusive)."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), NanBesideNoise(noisy=False), *_head(8, num_classes))


class Times(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def nan_loss_net(num_classes: int) -> nn.Module:
    """Every output NaN, so the loss and, after step 1, every weight: nothing is left to compare."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), Times(float("nan")), *_head(8, num_classes))


def finite_loss_net(num_classes: int) -> nn.Module:
    """nan_loss_net's control: the same network with a finite factor."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), Times(0.5), *_head(8, num_classes))


class GlobalNumpyNoise(nn.Module):
    """Noise from numpy's global generator, unseeded: two launches of a script differ. Its scale is
    1, not a small fraction: with 1e-3 the step-1 losses of two launches could round to the same
    float32 (it happened once in a full suite) while their gradients still differed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import numpy as np

        return x + float(np.random.rand())


def global_numpy_noise_net(num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), GlobalNumpyNoise(), *_head(8, num_classes))


def seeded_numpy_noise_net(num_classes: int) -> nn.Module:
    """The control: the same noise, numpy's global generator seeded when the model is built."""
    import numpy as np

    np.random.seed(0)
    return global_numpy_noise_net(num_classes)


class SetsDeterminism(nn.Module):
    """Calls ``torch.use_deterministic_algorithms`` inside every forward pass."""

    def __init__(self, on: bool) -> None:
        super().__init__()
        self.on = on

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.use_deterministic_algorithms(self.on)
        return x


def turns_determinism_off_net(num_classes: int) -> nn.Module:
    """Switches deterministic algorithms off in its step, then runs max_unpool2d (no deterministic
    implementation on a CPU): a deterministic mode does not hold here."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), SetsDeterminism(on=False), Unpool(), *_head(8, num_classes))


def keeps_determinism_on_net(num_classes: int) -> nn.Module:
    """The control: the step sets deterministic algorithms on, as the deterministic mode has them."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), SetsDeterminism(on=True), *_head(8, num_classes))


class PinsThreads(nn.Module):
    """Sets the CPU thread count to 2 in every forward pass, whatever the check asked for."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.set_num_threads(2)
        return x


def pins_threads_net(num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), PinsThreads(), *_head(8, num_classes))


EPSILON = 2.0**-24  # half an ulp of 1.0 in float32


class ThreadSplitSum(nn.Module):
    """Scales its input by the float32 sum of (1, e, e, e), e half an ulp of 1, reduced as a CPU
    reduction is: one partial sum per thread, then the partials added in order. Each partial is
    exact (summed in float64) and then rounded; with one thread the sum rounds to 1 + 4e, with two
    to (1 + e -> 1) + 2e = 1 + 2e. So the result depends on the thread count for certain, on any CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = torch.tensor([1.0, EPSILON, EPSILON, EPSILON], dtype=torch.float64)
        partials = [chunk.sum().to(torch.float32) for chunk in values.chunk(torch.get_num_threads())]
        total = partials[0]
        for partial in partials[1:]:
            total = total + partial
        return x * total


def thread_split_net(num_classes: int) -> nn.Module:
    """Not the same with 1 and 2 threads, by construction (ThreadSplitSum)."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), ThreadSplitSum(), *_head(8, num_classes))


class UsesOpFromStep(nn.Module):
    """Runs max_unpool2d (no deterministic implementation on a CPU) from its second forward pass on."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.unpool = Unpool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.unpool(x) if self.calls >= 2 else x


def unpool_from_step_2_net(num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), UsesOpFromStep(), *_head(8, num_classes))


def leaves_a_thread_running_net(num_classes: int) -> nn.Module:
    """Starts a non-daemon thread that outlives everything (a logger, a prefetcher left behind): the
    process must still end once its result is written."""
    import threading
    import time

    threading.Thread(target=time.sleep, args=(3600,), name="left-behind", daemon=False).start()
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *_head(8, num_classes))


def kills_its_parent_net(num_classes: int) -> nn.Module:
    """Kills the process that started its job (detprof's fork server) while it is being built: the job
    itself goes on, and the next job needs a new server."""
    import signal

    os.kill(os.getppid(), signal.SIGKILL)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *_head(8, num_classes))


class CountsCalls(nn.Module):
    """Keeps a Python call count as its extra state (get_extra_state / set_extra_state)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x

    def get_extra_state(self) -> dict[str, int]:
        return {"calls": self.calls}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.calls = state["calls"]


def extra_state_net(num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), CountsCalls(), *_head(8, num_classes))
