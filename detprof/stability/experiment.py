"""``detprof stability``: train N models under a noise variant, store them, measure their spread.

Runs are added, never redone: asking for ``--runs 10`` where 5 are stored trains runs 5 to 9.
Each run trains in a fresh process under its variant's determinism mode; a crash costs that run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from detprof.modes import environment_for, toggles_for
from detprof.runner.processes import run_in_fresh_process
from detprof.stability.data import load_task
from detprof.stability.measures import summarize_runs
from detprof.stability.variants import resolve_variant, source_seeds
from detprof.store import ResultStore

RUN_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Recipe:
    """Training hyper-parameters. Learning rate for Adam; decay every N epochs by a factor."""

    epochs: int
    batch_size: int
    lr: float
    lr_decay_every: int | None
    lr_decay_factor: float
    batch_norm: bool
    dropout: float  # before the dense layers of the small CNN
    augment_shift: int  # random translation (a random crop of the zero-padded image), pixels
    flip: bool = False  # random horizontal flip, probability 0.5
    arch: str = "small-cnn"  # small-cnn or resnet18-cifar


ARCHS = ("small-cnn", "resnet18-cifar", "resnet18")
# digits: small enough that 10 runs take seconds on a CPU; dropout and shifts make every
# algorithmic source real. CIFAR: the paper's Appendix B (200 epochs, batch 128, Adam 4e-4 decayed
# x0.1 every 50 epochs, random crop with 4-pixel padding and horizontal flip).
DEFAULT_RECIPES = {
    "digits": Recipe(epochs=15, batch_size=32, lr=3e-3, lr_decay_every=10, lr_decay_factor=0.1, batch_norm=False,
                     dropout=0.1, augment_shift=1),
    "cifar10": Recipe(epochs=200, batch_size=128, lr=4e-4, lr_decay_every=50, lr_decay_factor=0.1, batch_norm=False,
                      dropout=0.0, augment_shift=4, flip=True, arch="small-cnn"),
    "cifar100": Recipe(epochs=200, batch_size=128, lr=4e-4, lr_decay_every=50, lr_decay_factor=0.1,
                       batch_norm=False, dropout=0.0, augment_shift=4, flip=True, arch="resnet18-cifar"),
    # CelebA: the paper's Appendix B (20 epochs, batch 128, 1e-3 decayed x0.1 every 5 epochs, no
    # augmentation); the ImageNet ResNet-18 on 64x64 crops.
    "celeba": Recipe(epochs=20, batch_size=128, lr=1e-3, lr_decay_every=5, lr_decay_factor=0.1, batch_norm=False,
                     dropout=0.0, augment_shift=0, flip=False, arch="resnet18"),
}


class StabilityArgumentError(ValueError):
    """A user-supplied value the experiment cannot take."""


def build_recipe(task: str, epochs: int | None, batch_size: int | None, lr: float | None,
                 batch_norm: bool | None, arch: str | None = None) -> Recipe:
    """The task's recipe with the given overrides; raises StabilityArgumentError for bad values."""
    recipe = DEFAULT_RECIPES[task]
    if arch is not None and arch not in ARCHS:
        raise StabilityArgumentError(f"--arch {arch!r} is not accepted for stability; use one of {', '.join(ARCHS)}")
    if epochs is not None and epochs < 1:
        raise StabilityArgumentError(f"--epochs {epochs} is not accepted; use an integer >= 1")
    if batch_size is not None and batch_size < 1:
        raise StabilityArgumentError(f"--batch-size {batch_size} is not accepted; use an integer >= 1")
    if lr is not None and not lr > 0:
        raise StabilityArgumentError(f"--lr {lr} is not accepted; use a learning rate > 0")
    changes = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr, "batch_norm": batch_norm,
                                 "arch": arch}.items() if v is not None}
    return Recipe(**{**asdict(recipe), **changes})


def experiment_key(task: str, variant: str, mode: str, fixed: tuple[str, ...], recipe: Recipe) -> str:
    """Runs that share this key belong to one experiment (and can be added to)."""
    identity = {"task": task, "variant": variant, "mode": mode, "fixed": list(fixed), "recipe": asdict(recipe)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def load_weights(path: str) -> np.ndarray:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    return np.concatenate([t.detach().double().flatten().numpy() for t in state.values()
                           if t.is_floating_point()])


def experiment_measures(store: ResultStore, experiment: dict[str, Any],
                        num_classes: int | None = None) -> dict[str, Any] | None:
    """Measures of a stored experiment, recomputed from its saved predictions, weights and labels
    (None when its labels file is missing). ``num_classes`` defaults to what the labels show."""
    labels_file = Path(experiment["directory"]) / "test_labels.npy"
    if not labels_file.exists():
        return None
    stored = store.stability_runs(experiment["experiment"])
    labels = np.load(labels_file)
    predictions = np.stack([np.load(r["predictions_path"]) for r in stored])
    weights = np.stack([load_weights(r["weights_path"]) for r in stored])
    groups_file = Path(experiment["directory"]) / "test_groups.npz"
    groups = dict(np.load(groups_file)) if groups_file.exists() else None
    classes = labels.shape[1] if labels.ndim == 2 else (
        num_classes or int(max(labels.max(), predictions.max())) + 1)
    return summarize_runs(predictions, labels, weights, classes, groups=groups)


def run_stability(task: str = "digits", variant: str = "algo+impl", runs: int = 10, fix: str | None = None,
                  epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                  batch_norm: bool | None = None, db: str | None = None, data_dir: str | None = None,
                  on_progress: Callable[[int, int, int, int], None] | None = None,
                  arch: str | None = None) -> dict[str, Any]:
    """Train the missing runs of an experiment, store them, and return its measures.

    ``on_progress(run, runs, epoch, epochs)`` is called as training advances. Accuracies, churn
    and rates are fractions; L2 is between unit-normalised weight vectors (0..2).
    """
    if runs < 1:
        raise StabilityArgumentError(f"--runs {runs} is not accepted; use an integer >= 1")
    chosen = resolve_variant(variant, fix)
    data = load_task(task, data_dir)  # validates the data before any training starts
    recipe = build_recipe(task, epochs, batch_size, lr, batch_norm, arch)
    if chosen.name == "order-only":
        # Dropout masks and shifts are drawn per batch position, so a new order would also hand
        # them to other examples. Off, a full-batch run is mathematically the same every time and
        # any difference left is floating-point summation order.
        recipe = Recipe(**{**asdict(recipe), "dropout": 0.0, "augment_shift": 0, "flip": False})
    key = experiment_key(task, chosen.name, chosen.mode, chosen.fixed, recipe)
    store = ResultStore(db, create=True)
    try:
        stored = store.stability_runs(key)
        base = store.path.parent / "stability" / key
        base.mkdir(parents=True, exist_ok=True)
        np.save(base / "test_labels.npy", data.y_test)  # so the measures can be recomputed without the data
        if data.groups:
            np.savez(base / "test_groups.npz", **data.groups)
        failures = []
        toggles = toggles_for(chosen.mode)
        environment = environment_for(toggles, dict(os.environ))
        for run_index in range(len(stored), runs):
            seeds = source_seeds(chosen, run_index)
            spec = {"task": task, "data_dir": data_dir, "recipe": asdict(recipe), "seeds": seeds,
                    "toggles": toggles.as_dict()}
            out_dir = base / f"run{run_index}"
            outcome = _train_with_progress(spec, out_dir, environment, run_index, runs, recipe.epochs, on_progress)
            result_file = out_dir / "result.json"
            if not result_file.exists():
                failures.append({"run": run_index, "exitcode": outcome.exitcode, "timed_out": outcome.timed_out,
                                 "log_tail": outcome.log_tail[-500:]})
                break  # later runs keep their indices: stop rather than leave a gap
            result = json.loads(result_file.read_text())
            store.save_stability_run({
                "experiment": key, "task": task, "variant": chosen.name, "mode": chosen.mode,
                "fixed": list(chosen.fixed), "recipe": asdict(recipe), "run_index": run_index, "seeds": seeds,
                "accuracy": result["accuracy"], "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "predictions_path": str(out_dir / "predictions.npy"), "weights_path": str(out_dir / "weights.pt"),
                "environment": result})
        stored = store.stability_runs(key)
        # The same path the report takes: measures recomputed from what was stored.
        summary = (experiment_measures(store, {"experiment": key, "directory": str(base)}, data.num_classes)
                   or {"runs": 0}) if stored else {"runs": 0}
    finally:
        store.close()
    return {"task": task, "variant": chosen.name, "mode": chosen.mode, "fixed": list(chosen.fixed),
            "description": chosen.description, "recipe": asdict(recipe), "experiment": key, **summary,
            "requested_runs": runs, "failed": failures,
            "nondeterministic_ops": sorted({op for r in stored for op in r["environment"]["nondeterministic_ops"]}),
            "test_examples": int(len(data.y_test))}


def _train_with_progress(spec: dict[str, Any], out_dir: Path, environment: dict[str, str], run_index: int,
                         runs: int, epochs: int, on_progress: Callable[[int, int, int, int], None] | None) -> Any:
    """Train one run in a fresh process, polling its progress file for the caller's progress bar."""
    import threading

    out_dir.mkdir(parents=True, exist_ok=True)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            progress = out_dir / "progress"
            if on_progress and progress.exists():
                text = progress.read_text().strip()
                if text.isdigit():
                    on_progress(run_index, runs, int(text), epochs)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with tempfile.TemporaryDirectory(prefix="detprof-stability-") as scratch:
        started = time.perf_counter()
        outcome = run_in_fresh_process("detprof.stability.train:train_to_dir", (spec, str(out_dir)), environment,
                                       Path(scratch, "run.log"), RUN_TIMEOUT_S)
        (out_dir / "wall_s").write_text(f"{time.perf_counter() - started:.3f}")
    done.set()
    watcher.join()
    if on_progress:
        on_progress(run_index, runs, epochs, epochs)
    return outcome
