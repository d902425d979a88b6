"""Stability measures over N trained models (paper Section 2.1), computed correctly.

Inputs are plain arrays: ``predictions`` [runs, examples] of predicted labels, ``labels``
[examples], ``weights`` [runs, parameters]. Accuracies and rates are fractions (0..1).
Two deliberate differences from the paper's released code: churn is *disagreement* (the code
computed agreement), and FNR is FN / (FN + TP) (the code used a wrong denominator).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from detprof.stats import BOOTSTRAP_RESAMPLES, CONFIDENCE


def correct_counts(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Number of right predictions of each run (integers, so identical runs have exactly zero spread)."""
    return (np.asarray(predictions) == np.asarray(labels)[None, :]).sum(axis=1)


def accuracies(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Accuracy of each run, a fraction."""
    return correct_counts(predictions, labels) / np.asarray(labels).size


def _pairs(runs: int) -> list[tuple[int, int]]:
    if runs < 2:
        raise ValueError("at least two runs are needed for a pairwise measure")
    return list(combinations(range(runs), 2))


def churn(predictions: np.ndarray) -> float:
    """Predictive churn: the fraction of examples on which two models disagree, mean over all pairs."""
    predictions = np.asarray(predictions)
    return float(np.mean([(predictions[i] != predictions[j]).mean() for i, j in _pairs(len(predictions))]))


def l2_distance(weights: np.ndarray) -> float:
    """Mean over pairs of the L2 distance between unit-normalised flattened weight vectors (0..2)."""
    weights = np.asarray(weights, dtype=np.float64)
    unit = weights / np.linalg.norm(weights, axis=1, keepdims=True)
    return float(np.mean([np.linalg.norm(unit[i] - unit[j]) for i, j in _pairs(len(unit))]))


def per_class_accuracy(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy of each run on each class: [runs, classes]; NaN for a class absent from ``labels``."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    result = np.full((len(predictions), num_classes), np.nan)
    for c in range(num_classes):
        mask = labels == c
        if mask.any():
            result[:, c] = (predictions[:, mask] == c).mean(axis=1)
    return result


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true class, predicted class] (the layout scikit-learn uses)."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def binary_rates(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, FPR = FP / (FP + TN) and FNR = FN / (FN + TP) of one binary prediction (NaN if undefined)."""
    (tn, fp), (fn, tp) = confusion_matrix(predictions, labels, 2)
    total = tn + fp + fn + tp
    return {"accuracy": (tp + tn) / total if total else np.nan,
            "fpr": fp / (fp + tn) if fp + tn else np.nan,
            "fnr": fn / (fn + tp) if fn + tp else np.nan}


def subgroup_table(predictions: np.ndarray, labels: np.ndarray, groups: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """For binary predictions: std over runs (ddof=1) of accuracy, FPR and FNR per subgroup, and the
    ratio of each to the whole test set's std (the paper's Table 5). ``groups`` maps names to masks."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    everyone = {"All": np.ones(labels.shape, dtype=bool), **groups}
    rates = {name: [binary_rates(p[mask], labels[mask]) for p in predictions] for name, mask in everyone.items()}
    rows = []
    for name in everyone:
        row: dict[str, Any] = {"group": name, "examples": int(everyone[name].sum())}
        for metric in ("accuracy", "fpr", "fnr"):
            std = float(np.std([r[metric] for r in rates[name]], ddof=1))
            overall = float(np.std([r[metric] for r in rates["All"]], ddof=1))
            row[f"{metric}_std"] = std
            row[f"{metric}_std_ratio"] = std / overall if overall > 0 else np.nan
        rows.append(row)
    return rows


# Runs a bootstrap CI needs. Two runs make one pair: every resample of them holds that pair or
# nothing, so their "CI" came out as the value itself ("19.44% (19.44-19.44)"), claiming a
# certainty that one pair cannot give. From three runs on, resampling varies the pairs.
MIN_RUNS_FOR_CI = 3


def bootstrap_over_runs(runs: int, statistic: Callable[[np.ndarray], float], seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap CI of ``statistic(run indices)``, resampling runs with replacement."""
    result = scipy_stats.bootstrap((np.arange(runs),), lambda idx: statistic(np.asarray(idx, dtype=int)),
                                   vectorized=False, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=CONFIDENCE,
                                   method="percentile", random_state=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return float(low), float(high)


def bootstrap_pairwise(matrix: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap CI of the mean of a symmetric pairwise measure over distinct runs.

    Runs are resampled with replacement; a drawn run paired with itself says nothing about
    disagreement, so such pairs are left out, and resamples without two distinct runs are skipped.
    """
    runs = len(matrix)
    rng = np.random.default_rng(seed)
    upper = np.triu(np.ones((runs, runs), dtype=bool), k=1)
    means = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        picks = rng.integers(0, runs, runs)
        distinct = picks[:, None] != picks[None, :]
        mask = upper & distinct
        if mask.any():
            means.append(float(matrix[np.ix_(picks, picks)][mask].mean()))
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def summarize_runs(predictions: np.ndarray, labels: np.ndarray, weights: np.ndarray, num_classes: int,
                   seed: int = 0, groups: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """All measures over the runs: accuracy mean/std (ddof=1), churn, L2, per-class std, with 95% CIs,
    and for a binary task with ``groups`` (test-example masks) the subgroup table (paper Table 5).

    Multi-label tasks (``labels`` [examples, attributes] of 0/1, ``predictions`` [runs, examples,
    attributes]) are measured over every (example, attribute) prediction; "per class" is then per
    attribute, and ``groups`` (example masks) give the subgroup table with pooled attributes.
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if labels.ndim == 2:
        return _summarize_multilabel(predictions, labels, weights, seed, groups)
    runs = len(predictions)
    if groups and num_classes != 2:
        raise ValueError("subgroup rates (FPR, FNR) need a binary task")
    counts = correct_counts(predictions, labels)
    acc = counts / labels.size
    summary: dict[str, Any] = {"runs": runs, "accuracy_mean": float(counts.mean() / labels.size),
                               "accuracy_std": float(counts.std(ddof=1) / labels.size) if runs > 1 else None,
                               "accuracies": acc.tolist()}
    if runs < 2:
        return {**summary, "churn": None, "l2": None, "per_class_std": None, "per_class_std_max": None,
                "per_class_std_ratio_max": None}
    unit = np.asarray(weights, dtype=np.float64)
    unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
    disagreement = np.array([[(predictions[i] != predictions[j]).mean() for j in range(runs)] for i in range(runs)])
    distance = np.array([[np.linalg.norm(unit[i] - unit[j]) for j in range(runs)] for i in range(runs)])
    per_class_std = np.array([np.std((predictions[:, labels == c] == c).sum(axis=1), ddof=1) / (labels == c).sum()
                              if (labels == c).any() else np.nan for c in range(num_classes)])
    overall_std = float(summary["accuracy_std"])
    upper = np.triu_indices(runs, k=1)  # each pair once: the same means as churn() and l2_distance()
    summary.update({
        "churn": float(disagreement[upper].mean()), "l2": float(distance[upper].mean()),
        "per_class_std": per_class_std.tolist(), "per_class_std_max": float(np.nanmax(per_class_std)),
        "per_class_std_ratio_max": float(np.nanmax(per_class_std) / overall_std) if overall_std > 0 else None,
        "accuracy_mean_ci": None, "churn_ci": None, "l2_ci": None,  # set below from MIN_RUNS_FOR_CI runs on
    })
    if runs >= MIN_RUNS_FOR_CI:
        summary.update({
            "accuracy_mean_ci": list(bootstrap_over_runs(runs, lambda idx: float(acc[idx].mean()), seed)),
            "churn_ci": list(bootstrap_pairwise(disagreement, seed)),
            "l2_ci": list(bootstrap_pairwise(distance, seed)),
        })
    if groups:
        summary["subgroups"] = subgroup_table(predictions, labels, groups)
    return summary


def _summarize_multilabel(predictions: np.ndarray, labels: np.ndarray, weights: np.ndarray, seed: int,
                          groups: dict[str, np.ndarray] | None) -> dict[str, Any]:
    runs, _, attributes = predictions.shape
    flat = summarize_runs(predictions.reshape(runs, -1), labels.reshape(-1), weights, 2, seed)
    per_attribute = np.array([[(p[:, a] == labels[:, a]).sum() for a in range(attributes)] for p in predictions])
    summary = {**flat, "per_class_std": None, "per_class_std_max": None, "per_class_std_ratio_max": None}
    if runs >= 2:
        std = per_attribute.std(axis=0, ddof=1) / len(labels)
        ratio = float(std.max() / flat["accuracy_std"]) if flat["accuracy_std"] else None
        summary.update(per_class_std=std.tolist(), per_class_std_max=float(std.max()), per_class_std_ratio_max=ratio)
        if groups:
            pooled = {name: np.repeat(mask, attributes) for name, mask in groups.items()}
            summary["subgroups"] = subgroup_table(predictions.reshape(runs, -1), labels.reshape(-1), pooled)
    return summary


def format_small(value: float | None, digits: int = 4) -> str:
    """A measure for people: fixed-point, or scientific notation when it is non-zero but would show
    as zero (an L2 of 9.4e-8 is not 0.0000)."""
    if value is None:
        return "—"
    if value != 0 and abs(value) < 10 ** -digits:
        return f"{value:.2e}"
    return f"{value:.{digits}f}"
