"""A character model whose vocabulary comes from a set: its order, and so every token id, depends on
the interpreter's string hashes (PYTHONHASHSEED). ``--sorted`` is the control: sorted(set(text))."""
import sys

import torch
from torch import nn

TEXT = "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun"
vocabulary = sorted(set(TEXT)) if "--sorted" in sys.argv else list(set(TEXT))
ids = torch.tensor([vocabulary.index(c) for c in TEXT])
torch.manual_seed(0)
model = nn.Sequential(nn.Embedding(len(vocabulary), 8), nn.Linear(8, len(vocabulary)))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(3):
    loss = nn.functional.cross_entropy(model(ids[:-1]), ids[1:])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
