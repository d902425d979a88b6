"""A script that ends the interpreter with exit 0 before any step, past any exception handler:
detprof must not read that as success."""
import os

import torch

model = torch.nn.Linear(4, 2)
os._exit(0)
