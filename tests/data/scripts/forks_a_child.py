"""Trains three steps, then forks a child that trains two more steps of its own copy and exits,
while the parent trains two more: only the parent's five steps are the run's."""
import os

import torch
from torch import nn

torch.manual_seed(0)
model = nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
batch = torch.randn(16, 4)


def step() -> None:
    optimizer.zero_grad()
    model(batch).pow(2).mean().backward()
    optimizer.step()


for _ in range(3):
    step()
child = os.fork()
if child == 0:
    for _ in range(2):
        step()
    os._exit(0)
os.waitpid(child, 0)
for _ in range(2):
    step()
