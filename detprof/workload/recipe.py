"""The training recipe every backend runs, overhead and check alike: plain SGD with momentum, as the
paper's measurements train (one definition, so that PyTorch and TensorFlow jobs stay comparable)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingRecipe:
    """Optimizer settings and the weight of an auxiliary classifier's loss (Inception-v3's, as in its
    paper); the loss is cross-entropy on the workload's targets unless the model computes its own."""

    learning_rate: float = 0.01
    momentum: float = 0.9
    aux_loss_weight: float = 0.4


RECIPE = TrainingRecipe()
