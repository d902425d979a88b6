"""Steps an optimizer whose only parameter group is empty: there is nothing to compare."""
import torch

optimizer = torch.optim.SGD([{"params": []}], lr=0.1)
optimizer.step()
