from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from detprof.stats import (
    MIN_PAIRS_FOR_CI,
    RatioEstimate,
    job_low_quantile,
    paired_ratio,
    summarize,
    unpaired_ratio,
    verdict,
)


def test_summary_median_quartiles_and_noisy_flag() -> None:
    s = summarize([10.0, 11.0, 12.0, 13.0, 14.0])
    assert (s.n, s.median, s.q1, s.q3) == (5, 12.0, 11.0, 13.0)
    assert s.iqr == 2.0
    assert s.noisy  # 2/12 = 16.7% > 10%
    assert not summarize([100.0, 101.0, 102.0, 103.0, 104.0]).noisy  # 2/102
    with pytest.raises(ValueError):
        summarize([])


def test_paired_ratio_is_the_geometric_mean_of_pair_ratios_with_a_t_interval_on_logs() -> None:
    pairs = [([10.0, 10.0, 10.0], [12.0, 12.0, 12.0]), ([20.0, 21.0, 19.0], [22.0, 22.0, 22.0]),
             ([11.0, 11.0, 11.0], [13.2, 13.2, 13.2]), ([9.0, 9.0, 9.0], [10.8, 10.8, 10.8])]
    est = paired_ratio(pairs)
    logs = np.log([1.2, 22 / 20, 1.2, 1.2])
    assert est.ratio == pytest.approx(math.exp(logs.mean()))
    margin = scipy_stats.t.ppf(0.975, 3) * logs.std(ddof=1) / 2
    assert est.low == pytest.approx(math.exp(logs.mean() - margin))
    assert est.high == pytest.approx(math.exp(logs.mean() + margin))
    assert est.pairs == 4 and est.method == "paired-t" and est.has_ci
    assert est.half_width == pytest.approx((est.high - est.low) / 2 / est.ratio)


def test_a_slow_drift_that_hits_both_modes_alike_cancels_in_pairs_but_not_unpaired() -> None:
    # Each pair runs at the machine's speed of its moment; the treatment is exactly 10% slower.
    speed = [1.0, 1.3, 0.8, 1.25, 0.9, 1.2]
    pairs = [([100.0 * s] * 5, [110.0 * s] * 5) for s in speed]
    paired = paired_ratio(pairs)
    assert paired.ratio == pytest.approx(1.1) and paired.low == pytest.approx(1.1) and paired.high == pytest.approx(1.1)
    unpaired = unpaired_ratio([a for a, _ in pairs], [b for _, b in pairs])
    assert unpaired.high is not None and unpaired.low is not None
    assert unpaired.high - unpaired.low > 0.2  # the drift, not the treatment, sets its width


def test_fewer_than_three_pairs_give_no_interval_and_say_why() -> None:
    est = paired_ratio([([10.0], [11.0]), ([10.0], [11.5])])
    assert est.low is None and est.high is None and not est.has_ci and est.half_width is None
    assert est.reason is not None and est.reason.startswith("CI not available: too few repeats")
    assert str(MIN_PAIRS_FOR_CI) in est.reason
    assert not unpaired_ratio([[1.0], [1.1]], [[1.2], [1.3]]).has_ci


def test_pairs_with_a_missing_side_are_left_out_and_no_pair_is_an_error() -> None:
    est = paired_ratio([([10.0], [20.0]), ([], [20.0]), ([10.0], [20.0]), ([10.0], [20.0])])
    assert est.pairs == 3 and est.ratio == pytest.approx(2.0)
    with pytest.raises(ValueError):
        paired_ratio([([], [1.0])])
    with pytest.raises(ValueError):
        unpaired_ratio([], [[1.0]])


def test_per_job_estimator_is_pluggable() -> None:
    steps_a = list(np.linspace(10, 20, 11))
    steps_b = list(np.linspace(20, 40, 11))
    est = paired_ratio([(steps_a, steps_b)] * 3, per_job=job_low_quantile)
    assert est.ratio == pytest.approx(np.percentile(steps_b, 10) / np.percentile(steps_a, 10))


def test_unpaired_ratio_of_pooled_medians_with_cluster_bootstrap() -> None:
    rng = np.random.default_rng(7)
    same_a = [rng.normal(100, 3, 30) for _ in range(4)]
    same_b = [rng.normal(100, 3, 30) for _ in range(4)]
    aa = unpaired_ratio(same_a, same_b)
    assert aa.ratio == pytest.approx(np.median(np.concatenate(same_b)) / np.median(np.concatenate(same_a)))
    assert aa.contains(1.0) and aa.method == "cluster-bootstrap"
    slow = unpaired_ratio(same_a, [rng.normal(150, 3, 30) for _ in range(4)])
    assert slow.low is not None and slow.low > 1.4 and slow.high is not None and slow.high < 1.6


@pytest.mark.parametrize(("estimate", "expected"), [
    (RatioEstimate(1.23, 1.19, 1.27, "paired-t", 5),
     "deterministic is 1.230x slower than default (95% CI 1.190-1.270)"),
    (RatioEstimate(0.9, 0.85, 0.95, "paired-t", 5), "deterministic is faster than default: x0.900 the step time"),
    (RatioEstimate(1.001, 0.979, 1.021, "paired-t", 9), "no difference resolved at ±2.1% (95% CI 0.979-1.021)"),
    (RatioEstimate(1.1, None, None, "paired-t", 2, "CI not available: too few repeats (2 per mode)"),
     "deterministic / default: x1.100; CI not available: too few repeats"),
    (None, "no ratio"),
])
def test_verdict_is_the_sentence_a_person_reads_first(estimate: RatioEstimate | None, expected: str) -> None:
    assert verdict(estimate, "default", "deterministic").startswith(expected)


def test_the_verdict_and_the_precision_line_state_one_width() -> None:
    from detprof.runner.protocol import projected_pairs
    from detprof.stats import plus_minus

    # The main job's case: an interval lopsided about 1, where the distance of its far end from 1
    # (6.6%) and its half-width over the ratio (4.9%) differ. Both lines now state the latter.
    lopsided = RatioEstimate(1.017, 0.968, 1.066, "paired-t", 10)
    assert lopsided.half_width == pytest.approx(0.04818, abs=1e-5)
    assert verdict(lopsided, "default", "deterministic") == "no difference resolved at ±4.9% (95% CI 0.968-1.066)"
    assert plus_minus(lopsided.half_width or 0) == "±4.9%"
    assert plus_minus(0.02) == "±2.0%" and plus_minus(0.0201) == "±2.1%"  # rounded up, never flattering
    # The projection on the precision line: the half-width shrinks as 1/sqrt(pairs).
    assert projected_pairs(5, 0.117, 0.02) == 172 and projected_pairs(5, 0.019, 0.02) is None
    assert projected_pairs(0, None, 0.02) is None
