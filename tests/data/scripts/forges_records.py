"""Hostile: writes a record of its own into every file descriptor it can find open for writing (the
watch's records among them), hoping to be taken for detprof's watch."""
import json
import os

import torch
from torch import nn

for name in os.listdir("/proc/self/fd"):
    try:
        os.write(int(name), (json.dumps({"step": 1, "params": ["forged"], "names": ["w"], "key": "optimizer 0"})
                             + "\n").encode())
    except OSError:
        continue
torch.manual_seed(0)
model = nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(2):
    optimizer.zero_grad()
    model(torch.ones(3, 4)).sum().backward()
    optimizer.step()
