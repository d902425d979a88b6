"""A model with a module that adds noise from a generator seeded by the operating system: the runs
part at step 1, and the op to blame is ``aten::randn`` inside ``body.noise``."""
import os

import torch
from torch import nn


class Noise(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
        return x + 1e-3 * torch.randn(x.shape, generator=generator)


torch.manual_seed(0)
model = nn.Sequential()
model.add_module("body", nn.Sequential(nn.Linear(4, 8)))
model.body.add_module("noise", Noise())
model.add_module("head", nn.Linear(8, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
batch = torch.randn(16, 4)
for _ in range(3):
    optimizer.zero_grad()
    model(batch).pow(2).mean().backward()
    optimizer.step()
