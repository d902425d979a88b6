"""A loop that updates its weights itself (no optimizer), marked with ``detprof.step(model)`` after
each update. ``--unseeded`` draws the data from numpy without a seed (the negative control);
``--no-marker`` leaves the marker out (nothing to watch)."""
import sys

import numpy as np
import torch
from torch import nn

import detprof

torch.manual_seed(0)
data = np.random.default_rng(None if "--unseeded" in sys.argv else 0).normal(size=(64, 4)).astype(np.float32)
features = torch.from_numpy(data)
targets = features.sum(dim=1, keepdim=True)
model = nn.Linear(4, 1)
for _ in range(4):
    loss = nn.functional.mse_loss(model(features), targets)
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(parameter.grad, alpha=-0.05)
    if "--no-marker" not in sys.argv:
        detprof.step(model)
