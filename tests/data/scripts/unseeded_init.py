"""Builds its model without seeding torch, then seeds it for the data: the two runs start from
different weights, which is step 0's difference, not step 1's."""
import os

import torch
from torch import nn

torch.manual_seed(int.from_bytes(os.urandom(4), "little"))  # as an unseeded interpreter would differ
model = nn.Linear(4, 2)
torch.manual_seed(0)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
batch = torch.randn(16, 4)
for _ in range(2):
    optimizer.zero_grad()
    model(batch).pow(2).mean().backward()
    optimizer.step()
