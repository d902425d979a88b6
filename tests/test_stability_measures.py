"""Stability measures against values computed by hand, and against scikit-learn's confusion matrix."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sklearn_confusion

from detprof.stability.measures import (
    accuracies,
    binary_rates,
    churn,
    confusion_matrix,
    l2_distance,
    per_class_accuracy,
    subgroup_table,
    summarize_runs,
)

LABELS = np.array([0, 1, 2, 2])
PREDICTIONS = np.array([[0, 1, 2, 2],   # 4/4 right
                        [0, 2, 2, 2],   # 3/4
                        [1, 1, 2, 0]])  # 2/4


def test_accuracy_and_its_sample_std() -> None:
    assert accuracies(PREDICTIONS, LABELS).tolist() == [1.0, 0.75, 0.5]
    summary = summarize_runs(PREDICTIONS, LABELS, np.eye(3) + 1, num_classes=3)
    assert summary["accuracy_mean"] == pytest.approx(0.75)
    assert summary["accuracy_std"] == pytest.approx(0.25)  # sqrt(((.25)^2 + 0 + (.25)^2) / (3 - 1))


def test_churn_is_disagreement_not_agreement() -> None:
    # pairs: (0,1) differ on 1 of 4; (0,2) differ on 2 of 4; (1,2) differ on 3 of 4 -> mean 0.5
    assert churn(PREDICTIONS) == pytest.approx((0.25 + 0.5 + 0.75) / 3)
    assert churn(np.array([[1, 2, 3], [1, 2, 3]])) == 0.0
    with pytest.raises(ValueError):
        churn(PREDICTIONS[:1])


def test_l2_uses_unit_normalised_weights() -> None:
    weights = np.array([[3.0, 0.0], [0.0, 5.0], [10.0, 0.0]])
    # unit vectors: e1, e2, e1 -> distances sqrt(2), 0, sqrt(2)
    assert l2_distance(weights) == pytest.approx((2 ** 0.5 + 2 ** 0.5 + 0.0) / 3)
    assert l2_distance(np.array([[1.0, 1.0], [2.0, 2.0]])) == pytest.approx(0.0)


def test_per_class_accuracy_and_its_spread() -> None:
    table = per_class_accuracy(PREDICTIONS, LABELS, 4)
    assert table[:, 0].tolist() == [1.0, 1.0, 0.0]
    assert table[:, 1].tolist() == [1.0, 0.0, 1.0]
    assert table[:, 2].tolist() == [1.0, 1.0, 0.5]
    assert np.isnan(table[:, 3]).all()  # class 3 never occurs
    summary = summarize_runs(PREDICTIONS, LABELS, np.eye(3) + 1, num_classes=4)
    assert summary["per_class_std_max"] == pytest.approx(np.std([1.0, 0.0, 1.0], ddof=1))
    assert summary["per_class_std_ratio_max"] == pytest.approx(np.std([1.0, 0.0, 1.0], ddof=1) / 0.25)


def test_confusion_matrix_matches_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    labels, predictions = rng.integers(0, 5, 500), rng.integers(0, 5, 500)
    assert (confusion_matrix(predictions, labels, 5) == sklearn_confusion(labels, predictions, labels=range(5))).all()


def test_binary_rates_use_the_right_denominators() -> None:
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    predictions = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0])  # TP 3, FN 1, FP 2, TN 4
    (tn, fp), (fn, tp) = sklearn_confusion(labels, predictions, labels=[0, 1])
    rates = binary_rates(predictions, labels)
    assert rates["fnr"] == pytest.approx(fn / (fn + tp)) == pytest.approx(0.25)
    assert rates["fpr"] == pytest.approx(fp / (fp + tn)) == pytest.approx(2 / 6)
    assert rates["accuracy"] == pytest.approx(0.7)


def test_subgroup_table_reports_std_and_ratio_to_all() -> None:
    labels = np.array([1, 0, 1, 0])
    predictions = np.array([[1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 1, 1]])
    groups = {"A": np.array([True, True, False, False]), "B": np.array([False, False, True, True])}
    rows = {r["group"]: r for r in subgroup_table(predictions, labels, groups)}
    # group A accuracies per run: 1.0, 0.5, 0.5; all: 1.0, 0.75, 0.5
    assert rows["A"]["accuracy_std"] == pytest.approx(np.std([1.0, 0.5, 0.5], ddof=1))
    assert rows["A"]["accuracy_std_ratio"] == pytest.approx(np.std([1.0, 0.5, 0.5], ddof=1) / 0.25)
    assert rows["All"]["accuracy_std_ratio"] == pytest.approx(1.0) and rows["B"]["examples"] == 2


def test_pairwise_bootstrap_never_counts_a_run_against_itself() -> None:
    from detprof.stability.measures import bootstrap_pairwise

    everyone_differs = np.ones((3, 3)) - np.eye(3)  # every pair of distinct runs disagrees completely
    assert bootstrap_pairwise(everyone_differs) == (1.0, 1.0)


def test_confidence_intervals_bracket_the_estimates() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 300)
    predictions = np.where(rng.random((8, 300)) < 0.9, labels, rng.integers(0, 10, (8, 300)))
    summary = summarize_runs(predictions, labels, rng.normal(size=(8, 50)), num_classes=10)
    for key in ("accuracy_mean", "churn", "l2"):
        low, high = summary[f"{key}_ci"]
        assert low <= summary[key] <= high
