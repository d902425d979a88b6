"""A plain PyTorch training loop, with no detprof import: the kind of script `check --script` takes.

    detprof check --script examples/scripts/train_loop.py
    detprof check --script examples/scripts/train_loop.py --locate-op -- --shuffle unseeded

It trains a small classifier on 512 synthetic examples with SGD, reshuffling them every epoch.
``--shuffle seeded`` (the default) shuffles through a seeded torch generator, so two runs see the
examples in the same order; ``--shuffle unseeded`` shuffles with Python's ``random`` module, which
a new interpreter seeds from the operating system: the runs then part at step 1.
"""

import argparse
import random

import torch
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shuffle", choices=("seeded", "unseeded"), default="seeded")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args()

    torch.manual_seed(0)
    features = torch.randn(512, 20)
    labels = (features[:, :5].sum(dim=1) > 0).long()
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    order_generator = torch.Generator().manual_seed(1)
    for epoch in range(args.epochs):
        if args.shuffle == "seeded":
            order = torch.randperm(len(features), generator=order_generator).tolist()
        else:
            order = list(range(len(features)))
            random.shuffle(order)
        for start in range(0, len(order), args.batch_size):
            batch = order[start:start + args.batch_size]
            loss = nn.functional.cross_entropy(model(features[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
