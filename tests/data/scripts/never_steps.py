"""A script that builds a model and an optimizer but never steps it (check --script refuses it)."""
import torch

model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
print("no training here")
