from __future__ import annotations

import numpy as np
import pytest

from detprof.stats import ratio_of_medians, summarize


def test_summary_median_quartiles_and_noisy_flag() -> None:
    s = summarize([10.0, 11.0, 12.0, 13.0, 14.0])
    assert (s.n, s.median, s.q1, s.q3) == (5, 12.0, 11.0, 13.0)
    assert s.iqr == 2.0
    assert s.noisy  # 2/12 = 16.7% > 10%
    assert not summarize([100.0, 101.0, 102.0, 103.0, 104.0]).noisy  # 2/102
    with pytest.raises(ValueError):
        summarize([])


def test_ratio_is_ratio_of_pooled_medians() -> None:
    base = [[10.0, 10.0, 12.0], [11.0, 11.0, 11.0]]
    treat = [[22.0, 20.0, 24.0], [22.0, 21.0, 23.0]]
    est = ratio_of_medians(base, treat)
    assert est.ratio == pytest.approx(np.median([22, 20, 24, 22, 21, 23]) / np.median([10, 10, 12, 11, 11, 11]))
    assert est.method == "cluster"
    assert est.low <= est.ratio <= est.high


def test_ci_contains_one_for_same_distribution_and_excludes_it_for_a_real_slowdown() -> None:
    rng = np.random.default_rng(7)
    same_a = [rng.normal(100, 3, 30) for _ in range(4)]
    same_b = [rng.normal(100, 3, 30) for _ in range(4)]
    aa = ratio_of_medians(same_a, same_b)
    assert aa.contains(1.0) and abs(aa.ratio - 1) < 0.03
    slow = [rng.normal(150, 3, 30) for _ in range(4)]
    ab = ratio_of_medians(same_a, slow)
    assert ab.low > 1.4 and ab.high < 1.6


def test_single_repeat_falls_back_to_step_bootstrap() -> None:
    rng = np.random.default_rng(1)
    est = ratio_of_medians([rng.normal(50, 1, 40)], [rng.normal(100, 1, 40)])
    assert est.method == "steps"
    assert 1.9 < est.low <= est.ratio <= est.high < 2.1


def test_ratio_requires_data() -> None:
    with pytest.raises(ValueError):
        ratio_of_medians([], [[1.0]])
