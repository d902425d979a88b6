"""One training run of a stability experiment, inside a fresh process (detprof.runner.processes).

Writes into its run directory: ``predictions.npy`` (test-set labels predicted), ``weights.pt``
(``torch.save`` of the state dict; read back only with ``weights_only=True``), ``result.json``,
and ``progress`` (the last finished epoch, for the parent's progress bar).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from detprof.modes import Toggles, apply_toggles, capture_nondeterministic_ops


def _shift(images: Any, generator: Any, max_shift: int) -> Any:
    """Random translation by up to ``max_shift`` pixels per image (zero padding, then a random crop)."""
    import torch

    if max_shift <= 0:
        return images
    size = images.shape[-1]
    padded = torch.nn.functional.pad(images, [max_shift] * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (images.shape[0], 2), generator=generator)
    out = torch.empty_like(images)
    for dy in range(2 * max_shift + 1):
        for dx in range(2 * max_shift + 1):
            mask = (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
            if mask.any():
                out[mask] = padded[mask, :, dy:dy + size, dx:dx + size]
    return out


def _flip(images: Any, generator: Any) -> Any:
    """Mirror each image left-right with probability 0.5."""
    import torch

    mask = torch.rand(images.shape[0], generator=generator) < 0.5
    out = images.clone()
    out[mask] = images[mask].flip(-1)
    return out


def _model(recipe: dict[str, Any], data: Any) -> Any:
    from detprof.zoo import build_model
    from detprof.zoo.paper_cnns import SmallCNN

    if recipe["arch"] in ("resnet18-cifar", "resnet18"):
        return build_model(recipe["arch"], num_classes=data.num_classes)
    return SmallCNN(data.num_classes, batch_norm=recipe["batch_norm"], image_size=data.image_size,
                    in_channels=data.in_channels, dropout=recipe["dropout"])


def train_to_dir(spec: dict[str, Any], out_dir: str) -> int:
    """Train one model as ``spec`` says and write its outputs to ``out_dir``; returns the exit code."""
    import torch

    from detprof.stability.data import as_float_images, load_task

    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    recipe, seeds = spec["recipe"], spec["seeds"]
    applied = apply_toggles(Toggles(**spec["toggles"]))
    data = load_task(spec["task"], spec.get("data_dir"))
    with capture_nondeterministic_ops() as nondeterministic_ops:
        torch.manual_seed(seeds["init"])
        model = _model(recipe, data)
        shuffle = torch.Generator().manual_seed(seeds["shuffle"])
        augment = torch.Generator().manual_seed(seeds["augment"])
        torch.manual_seed(seeds["dropout"])  # dropout draws from the global generator
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=recipe["lr_decay_every"] or 10**9,
                                                    gamma=recipe["lr_decay_factor"])
        x_train, y_train = data.x_train, torch.from_numpy(data.y_train)  # images stay numpy (uint8 for CelebA)
        batch = recipe["batch_size"]
        for epoch in range(recipe["epochs"]):
            model.train()
            order = torch.randperm(len(x_train), generator=shuffle)
            for start in range(0, len(order), batch):
                index = order[start:start + batch]
                images = _shift(torch.from_numpy(as_float_images(x_train[index.numpy()])), augment,
                                recipe["augment_shift"])
                if recipe.get("flip"):
                    images = _flip(images, augment)
                logits = model(images)
                if data.multilabel:  # one sigmoid per attribute
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y_train[index].float())
                else:
                    loss = torch.nn.functional.cross_entropy(logits, y_train[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            scheduler.step()
            (directory / "progress").write_text(str(epoch + 1))
        model.eval()
        with torch.no_grad():  # in chunks: the whole CIFAR test set at once would need gigabytes
            chunks = [model(torch.from_numpy(as_float_images(data.x_test[i:i + 1000])))
                      for i in range(0, len(data.x_test), 1000)]
            predictions = torch.cat([(c > 0).long() if data.multilabel else c.argmax(dim=1) for c in chunks]).numpy()
    np.save(directory / "predictions.npy", predictions)
    torch.save(model.state_dict(), directory / "weights.pt")
    result = {"accuracy": float((predictions == data.y_test).mean()), "applied_toggles": applied,
              "nondeterministic_ops": sorted(nondeterministic_ops), "threads": torch.get_num_threads(),
              "torch": torch.__version__}
    (directory / "result.json").write_text(json.dumps(result))
    return 0
