"""One training run of a stability experiment, inside a fresh process (detprof.process.processes).

Writes into its run directory: ``predictions.npy`` (test-set labels predicted), ``weights.pt``
(``torch.save`` of the state dict; read back only with ``weights_only=True``), ``result.json``,
and ``progress`` (the last finished epoch, for the parent's progress bar).

Every algorithmic source draws from its own seed, on the CPU, so that a seed means the same
thing on every device: the initial weights (built on the CPU, then moved), the shuffling order,
and the augmentation and dropout of each example. Augmentation (shift, flip) and dropout masks are
drawn per *example and epoch*, not per position in the batch, so that they stay with the example
whatever the order: the data-order experiment then changes the order and nothing else.
The learning-rate schedule counts optimizer steps, so that a larger batch does not decay it
sooner in training.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from detprof.backends.torch.switches import apply_toggles, capture_nondeterministic_ops
from detprof.documents import StabilityRunResult, StabilityRunSpec, write_json_whole
from detprof.modes import Toggles

EVAL_CHUNK = 1000  # test examples per forward pass in evaluation (the whole CIFAR test set would need GBs)


def stream_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed derived from ``seed`` and ``parts`` (epoch, layer, ...), for torch.Generator."""
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def augmentation_plan(examples: int, seed: int, epoch: int, max_shift: int, flip: bool) -> tuple[Any, Any]:
    """Per example of the training set, for one epoch: (shift offsets [N, 2] in 0..2*max_shift, flip
    flags [N]), drawn on the CPU from the augment seed and the epoch only."""
    import torch

    generator = torch.Generator().manual_seed(stream_seed(seed, "augment", epoch))
    offsets = torch.randint(0, 2 * max_shift + 1, (examples, 2), generator=generator)
    flips = torch.rand(examples, generator=generator) < 0.5 if flip else torch.zeros(examples, dtype=torch.bool)
    return offsets, flips


def augment(images: Any, offsets: Any, flips: Any, max_shift: int) -> Any:
    """Shift each image by its offsets (zero padding, then a crop) and mirror those flagged."""
    import torch

    out = images
    if max_shift > 0:
        size = images.shape[-1]
        padded = torch.nn.functional.pad(images, [max_shift] * 4)
        out = torch.empty_like(images)
        for dy in range(2 * max_shift + 1):
            for dx in range(2 * max_shift + 1):
                mask = (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
                if mask.any():
                    out[mask] = padded[mask, :, dy:dy + size, dx:dx + size]
    if flips.any():
        out = out.clone() if out is images else out
        out[flips] = out[flips].flip(-1)
    return out


def example_dropout_class() -> type:
    """nn.Module class of dropout whose masks belong to examples (built lazily: torch is imported here)."""
    import torch
    from torch import nn

    class ExampleDropout(nn.Module):
        """Dropout with one mask per (example, epoch, layer), drawn on the CPU from the dropout seed.

        The training loop sets ``example_ids`` (indices into the training set) and ``epoch``
        before each forward pass. In evaluation it is the identity, as nn.Dropout is."""

        def __init__(self, p: float, examples: int, seed: int, layer: int) -> None:
            super().__init__()
            self.p, self.examples, self.seed, self.layer = p, examples, seed, layer
            self.example_ids: Any = None
            self.epoch = 0
            self._masks: Any = None
            self._drawn_for: tuple[int, tuple[int, ...]] | None = None

        def forward(self, x: Any) -> Any:
            if not self.training or self.p == 0:
                return x
            shape = tuple(x.shape[1:])
            if self._drawn_for != (self.epoch, shape):
                generator = torch.Generator().manual_seed(stream_seed(self.seed, "dropout", self.epoch, self.layer))
                self._masks = torch.rand((self.examples, *shape), generator=generator) >= self.p
                self._drawn_for = (self.epoch, shape)
            keep = self._masks[self.example_ids].to(device=x.device, dtype=x.dtype)
            return x * keep / (1.0 - self.p)

    return ExampleDropout


def _model(recipe: dict[str, Any], data: Any) -> Any:
    from detprof.backends.torch.zoo import build_model
    from detprof.backends.torch.zoo.paper_cnns import SmallCNN

    if recipe["arch"] in ("resnet18-cifar", "resnet18"):
        return build_model(recipe["arch"], num_classes=data.num_classes)
    return SmallCNN(data.num_classes, batch_norm=recipe["batch_norm"], image_size=data.image_size,
                    in_channels=data.in_channels, dropout=recipe["dropout"])


def _per_example_dropout(model: Any, examples: int, seed: int) -> list[Any]:
    """Replace every nn.Dropout of ``model`` by an ExampleDropout; returns the new modules."""
    from torch import nn

    example_dropout = example_dropout_class()
    replaced: list[Any] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Dropout):
                module = example_dropout(child.p, examples, seed, len(replaced))
                setattr(parent, name, module)
                replaced.append(module)
    return replaced


def training_steps(recipe: dict[str, Any], examples: int) -> int:
    """Optimizer steps of the run: ``recipe['steps']`` when set, else epochs x batches per epoch."""
    return int(recipe.get("steps") or recipe["epochs"] * math.ceil(examples / recipe["batch_size"]))


def train_model(spec: Mapping[str, Any], data: Any, on_epoch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train one model as ``spec`` says on ``data``; returns predictions (numpy), the state dict (on
    the CPU), accuracy (a fraction), the device name and the ops that warned of nondeterminism."""
    import torch

    from detprof.stability.data import as_float_images

    recipe, seeds = spec["recipe"], spec["seeds"]
    device = torch.device(spec.get("device") or "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    with capture_nondeterministic_ops() as nondeterministic_ops:
        torch.manual_seed(seeds["init"])
        model = _model(recipe, data)  # initialised on the CPU: the same weights on every device
        dropouts = _per_example_dropout(model, len(data.x_train), seeds["dropout"])
        model = model.to(device)
        shuffle = torch.Generator().manual_seed(seeds["shuffle"])
        torch.manual_seed(seeds["dropout"])  # any other random layer draws from the global generators
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
        total_steps = training_steps(recipe, len(data.x_train))
        decay_every = (max(1, round(recipe["lr_decay_every"] * total_steps)) if recipe["lr_decay_every"]
                       else total_steps + 1)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=decay_every,
                                                    gamma=recipe["lr_decay_factor"])
        x_train, y_train = data.x_train, torch.from_numpy(data.y_train)  # images stay numpy (uint8 for CelebA)
        batch, step, epoch = recipe["batch_size"], 0, 0
        while step < total_steps:
            model.train()
            order = torch.randperm(len(x_train), generator=shuffle)
            offsets, flips = augmentation_plan(len(x_train), seeds["augment"], epoch, recipe["augment_shift"],
                                               bool(recipe.get("flip")))
            for module in dropouts:
                module.epoch = epoch
            for start in range(0, len(order), batch):
                if step >= total_steps:
                    break
                index = order[start:start + batch]
                images = augment(torch.from_numpy(as_float_images(x_train[index.numpy()])), offsets[index],
                                 flips[index], recipe["augment_shift"]).to(device)
                for module in dropouts:
                    module.example_ids = index
                logits = model(images)
                targets = y_train[index].to(device)
                if data.multilabel:  # one sigmoid per attribute
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets.float())
                else:
                    loss = torch.nn.functional.cross_entropy(logits, targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
            epoch += 1
            if on_epoch:
                on_epoch(epoch)
        model.eval()
        with torch.no_grad():
            chunks = [model(torch.from_numpy(as_float_images(data.x_test[i:i + EVAL_CHUNK])).to(device))
                      for i in range(0, len(data.x_test), EVAL_CHUNK)]
            predictions = torch.cat([(c > 0).long() if data.multilabel else c.argmax(dim=1)
                                     for c in chunks]).cpu().numpy()
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    return {"predictions": predictions, "state": state, "accuracy": float((predictions == data.y_test).mean()),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "nondeterministic_ops": sorted(nondeterministic_ops), "steps": step, "epochs": epoch}


def train_to_dir(spec: StabilityRunSpec, result_path: str) -> int:
    """Train one model as ``spec`` says and write its outputs beside ``result_path`` (its run folder),
    the result document last, there (detprof.process.child); returns the exit code. A spec that is
    not a StabilityRunSpec (a misspelt field) raises ShapeError before anything trains."""
    import torch

    from detprof.shapes import require_shape
    from detprof.stability.data import load_task

    require_shape(spec, StabilityRunSpec, "the stability run's spec")
    directory = Path(result_path).parent
    directory.mkdir(parents=True, exist_ok=True)
    threads = spec["threads"]
    if threads:
        torch.set_num_threads(threads)
    applied = apply_toggles(Toggles(**spec["toggles"]))
    data = load_task(spec["task"], spec["data_dir"], spec["target"])
    def progress(epoch: int) -> None:
        (directory / "progress").write_text(str(epoch))

    trained = train_model(spec, data, progress)
    np.save(directory / "predictions.npy", trained["predictions"])
    torch.save(trained["state"], directory / "weights.pt")
    result: StabilityRunResult = {
        "accuracy": trained["accuracy"], "applied_toggles": applied,
        "nondeterministic_ops": trained["nondeterministic_ops"], "threads": torch.get_num_threads(),
        "torch": torch.__version__, "device": trained["device"], "steps": trained["steps"],
        "cuda_visible_devices": spec["gpu_uuid"]}
    write_json_whole(result_path, result)
    return 0
