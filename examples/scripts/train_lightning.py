"""A PyTorch Lightning training script, with no detprof import (needs `pip install lightning`).

    detprof check --script examples/scripts/train_lightning.py --steps 8

``seed_everything`` seeds torch, numpy and Python's ``random``, and the DataLoader shuffles through
the generator Lightning seeds; Lightning then steps the optimizer itself, where detprof's hooks
see it.
"""

import argparse

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Classifier(L.LightningModule):
    def __init__(self, lr: float) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 2))

    def training_step(self, batch, batch_index):
        features, labels = batch
        return nn.functional.cross_entropy(self.net(features), labels)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    L.seed_everything(0, workers=True)
    features = torch.randn(512, 20)
    labels = (features[:, :5].sum(dim=1) > 0).long()
    loader = DataLoader(TensorDataset(features, labels), batch_size=32, shuffle=True)
    trainer = L.Trainer(max_epochs=args.epochs, accelerator="cpu", devices=1, deterministic=True, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Classifier(args.lr), loader)


if __name__ == "__main__":
    main()
