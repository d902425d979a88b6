"""Statistics of the measurement protocol: medians, IQR, noisy flag and a bootstrap CI of the ratio.

Steps inside one process are not independent samples (they share its clocks, allocator and
algorithm choices), so the confidence interval resamples whole repeats (processes), a cluster
bootstrap; with a single repeat per mode it falls back to resampling steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

NOISY_IQR_FRACTION = 0.10  # IQR/median above this marks a mode as noisy
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Summary:
    """Robust summary of one mode's step times, in the unit of the input (ms in detprof)."""

    n: int
    median: float
    q1: float
    q3: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def noisy(self) -> bool:
        """True when IQR/median exceeds NOISY_IQR_FRACTION."""
        return self.median > 0 and self.iqr / self.median > NOISY_IQR_FRACTION


def summarize(values: Sequence[float] | np.ndarray) -> Summary:
    """Median and quartiles of ``values``; raises ValueError when there are none."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values to summarize")
    q1, median, q3 = np.percentile(data, [25, 50, 75])
    return Summary(n=int(data.size), median=float(median), q1=float(q1), q3=float(q3))


@dataclass(frozen=True)
class RatioEstimate:
    """Ratio treatment/baseline of medians with its bootstrap confidence interval."""

    ratio: float
    low: float
    high: float
    method: str  # "cluster" (repeats resampled) or "steps"

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def ratio_of_medians(baseline: Sequence[Sequence[float]], treatment: Sequence[Sequence[float]],
                     seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> RatioEstimate:
    """Estimate median(treatment) / median(baseline) with a 95% bootstrap CI.

    Each argument is a list of repeats, each repeat a list of step times (any one unit).
    Uses scipy.stats.bootstrap (percentile method): over repeats when both sides have at least
    two, else over the pooled steps.
    """
    base_repeats = [np.asarray(r, dtype=float) for r in baseline if len(r)]
    treat_repeats = [np.asarray(r, dtype=float) for r in treatment if len(r)]
    if not base_repeats or not treat_repeats:
        raise ValueError("both modes need at least one repeat with step times")
    base_all = np.concatenate(base_repeats)
    treat_all = np.concatenate(treat_repeats)
    point = float(np.median(treat_all) / np.median(base_all))
    rng = np.random.default_rng(seed)

    if len(base_repeats) >= 2 and len(treat_repeats) >= 2:
        def cluster_ratio(base_idx: np.ndarray, treat_idx: np.ndarray) -> float:
            base = np.concatenate([base_repeats[int(i)] for i in base_idx])
            treat = np.concatenate([treat_repeats[int(i)] for i in treat_idx])
            return float(np.median(treat) / np.median(base))

        samples = (np.arange(len(base_repeats)), np.arange(len(treat_repeats)))
        result = scipy_stats.bootstrap(samples, cluster_ratio, vectorized=False, paired=False,
                                       n_resamples=resamples, confidence_level=CONFIDENCE,
                                       method="percentile", random_state=rng)
        method = "cluster"
    else:
        def step_ratio(base: np.ndarray, treat: np.ndarray, axis: int = -1) -> np.ndarray:
            return np.median(treat, axis=axis) / np.median(base, axis=axis)

        result = scipy_stats.bootstrap((base_all, treat_all), step_ratio, vectorized=True, paired=False,
                                       n_resamples=resamples, confidence_level=CONFIDENCE,
                                       method="percentile", random_state=rng)
        method = "steps"
    low, high = result.confidence_interval
    return RatioEstimate(ratio=point, low=float(low), high=float(high), method=method)
