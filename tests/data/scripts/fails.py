"""A script that trains two steps, then fails with its own error (check --script names that line)."""
import torch

model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(2):
    model(torch.ones(3, 4)).sum().backward()
    optimizer.step()
raise ValueError("the data folder /no/such/folder is empty")
