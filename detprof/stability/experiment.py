"""``detprof stability``: train N models under a noise variant, store them, measure their spread.

Runs are added, never redone: asking for ``--runs 10`` where 5 are stored trains runs 5 to 9.
Each run trains in a fresh process under its variant's determinism mode; a crash costs that run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np

from detprof.backend import backend_for
from detprof.documents import DOCUMENT_VERSION, StabilityDocument, StabilityRunSpec
from detprof.errors import DetprofError
from detprof.modes import environment_for, toggles_for
from detprof.parse import is_whole_number
from detprof.process.child import ChildResult, Ending
from detprof.stability.data import load_task
from detprof.stability.recipes import DEFAULT_RECIPES, Recipe
from detprof.stability.stored import STABILITY_FRAMEWORK, experiment_measures, paired_comparison
from detprof.stability.variants import PARTNERS, resolve_variant, source_seeds
from detprof.store import StoreLike, open_store

RUN_TIMEOUT_S = 3600.0
ARCHS = ("small-cnn", "resnet18-cifar", "resnet18")


class StabilityArgumentError(DetprofError, ValueError):
    """A user-supplied value the experiment cannot take."""


MAX_EPOCHS = 10_000  # the paper trains for at most a few hundred; more is a typo, not a run
MAX_RUNS = 1_000  # models per experiment (the paper's figures use 10 to 100)


def build_recipe(task: str, epochs: int | None, batch_size: int | None, lr: float | None,
                 batch_norm: bool | None, arch: str | None = None) -> Recipe:
    """The task's recipe with the given overrides; raises StabilityArgumentError for bad values."""
    recipe = DEFAULT_RECIPES[task]
    if arch is not None and arch not in ARCHS:
        raise StabilityArgumentError(f"--arch {arch!r} is not accepted for stability; use one of {', '.join(ARCHS)}")
    if epochs is not None and not 1 <= epochs <= MAX_EPOCHS:
        raise StabilityArgumentError(f"--epochs {epochs} is not accepted; use 1 to {MAX_EPOCHS:,}")
    if batch_size is not None and batch_size < 1:
        raise StabilityArgumentError(f"--batch-size {batch_size} is not accepted; use an integer >= 1")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise StabilityArgumentError(f"--lr {lr} is not accepted; use a finite learning rate > 0")
    changes = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr, "batch_norm": batch_norm,
                                 "arch": arch}.items() if v is not None}
    return Recipe(**{**asdict(recipe), **changes})


def order_only_recipe(task: str, recipe: Recipe, examples: int) -> Recipe:
    """The data-order experiment's recipe: as many optimizer steps as the task's default recipe
    takes, whatever the batch size, so that a full-batch run trains as long as a mini-batch one."""
    default = DEFAULT_RECIPES[task]
    steps = recipe.epochs * math.ceil(examples / default.batch_size)
    return Recipe(**{**asdict(recipe), "steps": steps})


def experiment_key(task: str, variant: str, mode: str, fixed: tuple[str, ...], recipe: Recipe,
                   device: str = "cpu", threads: int | None = None, target: str | None = None) -> str:
    """Runs that share this key belong to one experiment (and can be added to). The device (``cpu``
    or the GPU's name) and the CPU thread count are part of it: they decide the implementation noise."""
    identity = {"task": task, "variant": variant, "mode": mode, "fixed": list(fixed), "recipe": asdict(recipe),
                "device": device, "threads": threads, "target": target}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def training_counts(data: Any) -> list[dict[str, Any]] | None:
    """The paper's Table 3: positive and negative training examples of the target per subgroup."""
    if data.train_groups is None or data.multilabel:
        return None
    positive = np.asarray(data.y_train) == 1
    everyone = {"All": np.ones(len(positive), dtype=bool), **data.train_groups}
    return [{"group": name, "positive": int((positive & mask).sum()), "negative": int((~positive & mask).sum()),
             "positive_fraction": float((positive & mask).sum() / mask.sum()) if mask.any() else None}
            for name, mask in everyone.items()]


def run_stability(task: str = "digits", variant: str = "algo+impl", runs: int = 10, fix: Sequence[str] | None = None,
                  epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                  batch_norm: bool | None = None, db: StoreLike = None, data_dir: str | None = None,
                  on_progress: Callable[[int, int, int, int], None] | None = None,
                  arch: str | None = None, gpu: str | None = "auto", threads: int | None = None,
                  run_timeout_s: float = RUN_TIMEOUT_S, target: str | None = None) -> StabilityDocument:
    """Train the missing runs of an experiment, store them, and return its measures.

    ``gpu`` chooses the device as ``detprof overhead --gpu`` does (alias, index, ``cpu``, ``auto``);
    ``threads`` the torch intra-op threads of CPU training (default 1); ``target`` CelebA's attribute.
    ``on_progress(run, runs, epoch, epochs)`` is called as training advances. Accuracies, churn
    and rates are fractions; L2 is between unit-normalised weight vectors (0..2).
    """
    from detprof.gpus import select_device
    from detprof.runner.config import CPU_THREADS

    if runs < 2:
        raise StabilityArgumentError(f"--runs {runs} is not accepted: at least 2 runs are needed to measure spread")
    if runs > MAX_RUNS:
        raise StabilityArgumentError(f"--runs {runs} is not accepted; use 2 to {MAX_RUNS:,}")
    if threads is not None and threads < 1:
        raise StabilityArgumentError(f"--threads {threads} is not accepted; use an integer >= 1")
    if not (math.isfinite(run_timeout_s) and run_timeout_s > 0):
        raise StabilityArgumentError(f"--run-timeout {run_timeout_s} is not accepted; use a finite number of "
                                     "seconds > 0")
    chosen = resolve_variant(variant, fix)
    device = select_device(gpu)
    cpu_threads = (threads or CPU_THREADS) if device.kind == "cpu" else None
    data = load_task(task, data_dir, target)  # validates the data before any training starts
    recipe = build_recipe(task, epochs, batch_size, lr, batch_norm, arch)
    if batch_size is not None and batch_size > len(data.x_train):  # a larger batch is the full set, mislabelled
        raise StabilityArgumentError(f"--batch-size {batch_size} is not accepted for {task}: its training set has "
                                     f"{len(data.x_train):,} examples; use 1 to {len(data.x_train):,} (the largest is "
                                     "full-batch training)")
    if chosen.name == "order-only":
        recipe = order_only_recipe(task, recipe, len(data.x_train))
    device_label = "cpu" if device.kind == "cpu" else device.name
    identity = (task, chosen.label, chosen.mode, chosen.fixed, recipe, device_label, cpu_threads, data.target)
    key = experiment_key(*identity)
    partner = PARTNERS.get(chosen.name) if not chosen.custom_fix else None
    with open_store(db, create=True) as store:
        stored = store.stability_runs(key)
        base = store.path.parent / "stability" / key
        base.mkdir(parents=True, exist_ok=True)
        np.save(base / "test_labels.npy", data.y_test)  # so the measures can be recomputed without the data
        if data.groups:
            np.savez(base / "test_groups.npz", **data.groups)  # type: ignore[arg-type]  # numpy's stub: names
        failures = []
        toggles = toggles_for(chosen.mode)
        environment = environment_for(toggles, dict(os.environ), device.gpu.uuid if device.gpu else None)
        batches = math.ceil(len(data.x_train) / recipe.batch_size)
        epochs_run = math.ceil(recipe.steps / batches) if recipe.steps else recipe.epochs
        for run_index in range(len(stored), runs):
            seeds = source_seeds(chosen, run_index)
            spec: StabilityRunSpec = {
                "task": task, "data_dir": data_dir, "target": data.target, "recipe": asdict(recipe), "seeds": seeds,
                "toggles": toggles.as_dict(), "device": device.torch_device,
                "gpu_uuid": device.gpu.uuid if device.gpu else None, "threads": cpu_threads}
            out_dir = base / f"run{run_index}"
            outcome = _train_with_progress(spec, out_dir, environment, run_index, runs, epochs_run, on_progress,
                                           run_timeout_s)
            if outcome.ending is not Ending.OK or outcome.document is None:
                failures.append({"run": run_index, "exitcode": outcome.exitcode,
                                 "timed_out": outcome.ending is Ending.TIMEOUT, "ending": str(outcome.ending),
                                 "log_tail": outcome.log_tail[-500:]})
                break  # later runs keep their indices: stop rather than leave a gap
            result = outcome.document
            store.save_stability_run({
                "experiment": key, "task": task, "variant": chosen.label, "mode": chosen.mode,
                "fixed": list(chosen.fixed), "recipe": asdict(recipe), "run_index": run_index, "seeds": seeds,
                "accuracy": result["accuracy"], "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "predictions_path": str(out_dir / "predictions.npy"), "weights_path": str(out_dir / "weights.pt"),
                "environment": result})
        stored = store.stability_runs(key)
        # The same path the report takes: measures recomputed from what was stored.
        summary = (experiment_measures(store, {"experiment": key, "directory": str(base)}, data.num_classes)
                   or {"runs": 0}) if stored else {"runs": 0}
        paired = None
        if partner:
            partner_mode = "deterministic" if chosen.mode == "default" else "default"
            partner_key = experiment_key(task, partner, partner_mode, chosen.fixed, recipe, device_label,
                                         cpu_threads, data.target)
            paired = paired_comparison(store, key, partner_key, partner)
    document: dict[str, Any] = {  # the measures' keys (StabilityDocument's) come with **summary
        "document_version": DOCUMENT_VERSION, "task": task, "variant": chosen.label, "mode": chosen.mode,
        "fixed": list(chosen.fixed), "description": chosen.description, "recipe": asdict(recipe), "experiment": key,
        **summary, "device": device_label, "threads": cpu_threads, "target": data.target,
        "training_counts": training_counts(data), "paired_with": paired, "requested_runs": runs, "failed": failures,
        "nondeterministic_ops": sorted({op for r in stored for op in r["environment"]["nondeterministic_ops"]}),
        "test_examples": int(len(data.y_test))}
    return cast(StabilityDocument, document)


def _train_with_progress(spec: StabilityRunSpec, out_dir: Path, environment: dict[str, str], run_index: int,
                         runs: int, epochs: int, on_progress: Callable[[int, int, int, int], None] | None,
                         timeout_s: float = RUN_TIMEOUT_S) -> ChildResult:
    """Train one run in a fresh process (detprof.process.child), polling its progress file for the
    caller's progress bar; how it ended, with its result document."""
    import threading

    out_dir.mkdir(parents=True, exist_ok=True)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            progress = out_dir / "progress"
            if on_progress and progress.exists():
                text = progress.read_text().strip()
                if is_whole_number(text):
                    on_progress(run_index, runs, int(text), epochs)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    outcome = backend_for(STABILITY_FRAMEWORK).run_stability_run(spec, out_dir, environment, timeout_s)
    (out_dir / "wall_s").write_text(f"{time.perf_counter() - started:.3f}")
    done.set()
    watcher.join()
    if on_progress:
        on_progress(run_index, runs, epochs, epochs)
    return outcome
