"""Sets PyTorch switches itself, as many training scripts do: TF32 always (nanoGPT does), and with
``--benchmark`` cuDNN's autotuning too, which a deterministic mode turns off."""
import sys

import torch
from torch import nn

torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
if "--benchmark" in sys.argv:
    torch.backends.cudnn.benchmark = True
torch.manual_seed(0)
model = nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
batch = torch.randn(16, 4)
for _ in range(3):
    optimizer.zero_grad()
    model(batch).pow(2).mean().backward()
    optimizer.step()
