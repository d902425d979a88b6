"""Two threads, each training its own model with its own optimizer: the threads interleave as the
scheduler pleases, but each model's steps are reproducible."""
import threading

import torch
from torch import nn


def train(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    model = nn.Linear(4, 2)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = torch.randn(16, 4, generator=generator)
    for _ in range(3):
        optimizer.zero_grad()
        model(batch).pow(2).mean().backward()
        optimizer.step()


threads = [threading.Thread(target=train, args=(seed,)) for seed in (1, 2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
