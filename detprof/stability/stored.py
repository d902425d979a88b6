"""A stored stability experiment read back: its predictions, weights, labels and subgroups (files
beside the store, which may have been damaged, truncated or replaced) and the measures recomputed
from them; run i against run i of its partner experiment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from detprof.backend import backend_for
from detprof.store import ResultStore, StoreError

STABILITY_FRAMEWORK = "pytorch"  # the backend whose trainings a stability experiment runs
T = TypeVar("T")


class StabilityFileError(StoreError):
    """A stored prediction, weight, label or subgroup file of a stability experiment that is missing
    or cannot be read as what detprof wrote there."""


def read_stored(path: str | Path, read: Callable[[str], T], what: str) -> T:
    """``read(path)``, with any failure raised as StabilityFileError naming the file. These are data
    files that may have been damaged, truncated or replaced (a merged store, a full disk); numpy's
    and torch's loaders fail on such bytes with many exception types, none of them a detprof bug.
    Neither loader unpickles: np.load keeps allow_pickle off, torch.load runs weights_only."""
    try:
        return read(str(path))
    except Exception as error:  # noqa: BLE001 - see the docstring
        reason = "missing" if isinstance(error, FileNotFoundError) else (
            f"unreadable: {type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}")
        raise StabilityFileError(f"{what} {str(path)!r} is {reason}") from None


def _load_state_weights(path: str) -> np.ndarray:
    state = backend_for(STABILITY_FRAMEWORK).read_state(Path(path))
    return np.concatenate([np.asarray(array, dtype=np.float64).ravel() for array in state.values()
                           if np.issubdtype(array.dtype, np.floating)])


def load_weights(path: str) -> np.ndarray:
    """A saved model's floating-point parameters as one float64 vector; StabilityFileError when the
    file is missing or not a weights file."""
    return read_stored(path, _load_state_weights, "weights file")


def _stacked(arrays: list[np.ndarray], what: str, experiment: str) -> np.ndarray:
    """The runs' arrays stacked; StabilityFileError when they differ in shape (a file replaced)."""
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise StabilityFileError(f"the {what} of stability experiment {experiment} differ in shape "
                                 f"({', '.join(map(str, sorted(shapes)))}): a stored file was replaced or damaged")
    return np.stack(arrays)


def experiment_measures(store: ResultStore, experiment: dict[str, Any],
                        num_classes: int | None = None) -> dict[str, Any] | None:
    """Measures of a stored experiment, recomputed from its saved predictions, weights and labels
    (None when its labels file is missing). ``num_classes`` defaults to what the labels show."""
    labels_file = Path(experiment["directory"]) / "test_labels.npy"
    if not labels_file.exists():
        return None
    stored = store.stability_runs(experiment["experiment"])
    key = experiment["experiment"]
    labels = read_stored(labels_file, np.load, "labels file")
    predictions = _stacked([read_stored(r["predictions_path"], np.load, "predictions file") for r in stored],
                           "predictions", key)
    weights = _stacked([load_weights(r["weights_path"]) for r in stored], "weights", key)
    groups_file = Path(experiment["directory"]) / "test_groups.npz"
    groups = read_stored(groups_file, lambda p: dict(np.load(p)), "subgroups file") if groups_file.exists() else None
    if len(labels) != predictions.shape[1]:
        raise StabilityFileError(f"the labels file {str(labels_file)!r} holds {len(labels)} labels for "
                                 f"{predictions.shape[1]} predictions per run: one of them was replaced or damaged")
    classes = labels.shape[1] if labels.ndim == 2 else (
        num_classes or int(max(labels.max(), predictions.max(), 1 if groups else 0)) + 1)
    from detprof.stability.measures import summarize_runs  # scipy: not before the values are checked

    return summarize_runs(predictions, labels, weights, classes, groups=groups)


def _stored_arrays(store: ResultStore, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Predictions [runs, ...] and flattened weights [runs, parameters] of a stored experiment."""
    stored = store.stability_runs(key)
    if not stored:
        return None
    return (_stacked([read_stored(r["predictions_path"], np.load, "predictions file") for r in stored],
                     "predictions", key),
            _stacked([load_weights(r["weights_path"]) for r in stored], "weights", key))


def paired_comparison(store: ResultStore, key: str, partner_key: str, partner: str) -> dict[str, Any] | None:
    """Run i of this experiment against run i of its partner (same seeds, the other determinism mode):
    mean churn and unit-weight L2 over the pairs both have; what implementation noise alone changes.
    None when the partner has no runs yet."""
    mine, theirs = _stored_arrays(store, key), _stored_arrays(store, partner_key)
    if mine is None or theirs is None:
        return None
    pairs = min(len(mine[0]), len(theirs[0]))
    if pairs == 0:
        return None
    disagreement = [float((mine[0][i] != theirs[0][i]).mean()) for i in range(pairs)]
    distance = []
    for i in range(pairs):
        a, b = mine[1][i], theirs[1][i]
        distance.append(float(np.linalg.norm(a / np.linalg.norm(a) - b / np.linalg.norm(b))))
    return {"variant": partner, "pairs": pairs, "churn": float(np.mean(disagreement)), "l2": float(np.mean(distance)),
            "bitwise_identical_pairs": sum(d == 0.0 for d in distance)}
