"""Sets its own CPU thread count, as nanoGPT's train.py and many others do."""
import torch
from torch import nn

torch.set_num_threads(2)
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
batch = torch.randn(16, 4)
for _ in range(3):
    optimizer.zero_grad()
    model(batch).pow(2).mean().backward()
    optimizer.step()
