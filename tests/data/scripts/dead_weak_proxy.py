"""Leaves a dead ``weakref.proxy`` among the live objects before training, as torch.compile does:
touching it raises ReferenceError, which must not be taken for the script's own error."""
import weakref

import torch
from torch import nn


class Thing:
    pass


thing = Thing()
proxies = [weakref.proxy(thing)]
del thing  # the proxy is now dead

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
batch = torch.randn(16, 4)
for _ in range(3):
    optimizer.zero_grad()
    model(batch).pow(2).mean().backward()
    optimizer.step()
