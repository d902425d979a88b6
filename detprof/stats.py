"""Statistics of the measurement protocol: medians, IQR, the noisy flag, and the ratio with its CI.

The protocol runs the two modes as *pairs* of fresh processes, adjacent in time and in balanced
order (AB, BA, AB, ...). Two processes started back to back share the machine's state (clock,
other tenants' load), so the ratio *within* a pair is far steadier than either time alone: on
the 2-core CPU machine the per-process medians of one mode drift by about 4% (sd of the log),
while the log ratio of adjacent processes varies by about 3.5% and carries no drift
(benchmarks/aa_test.py, docs/benchmarks.md).

The ratio is therefore estimated per pair, as the ratio of the two processes' median step
times, and summarised as the geometric mean over pairs, with a Student-t interval on the log
ratios (pairs are the independent units; steps inside one process are not). With fewer than
``MIN_PAIRS_FOR_CI`` pairs no interval is given at all. An unpaired cluster bootstrap over
processes (the earlier protocol) is kept for comparison in the A/A benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

NOISY_IQR_FRACTION = 0.10  # IQR/median above this marks a mode as noisy
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
MIN_PAIRS_FOR_CI = 3  # a t interval from 2 pairs (1 degree of freedom) is too wide to mean anything
TOO_FEW_REPEATS = "CI not available: too few repeats"


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
    """Treatment/baseline time ratio with its 95% CI (``low``/``high`` None, and ``reason`` set,
    when no trustworthy interval exists). ``pairs``: independent units the CI rests on."""

    ratio: float
    low: float | None
    high: float | None
    method: str  # "paired-t", "cluster-bootstrap"
    pairs: int
    reason: str | None = None

    @property
    def has_ci(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def half_width(self) -> float | None:
        """Half the CI's width relative to the ratio (0.02 means ±2%); None without a CI."""
        if self.low is None or self.high is None:
            return None
        return (self.high - self.low) / 2.0 / self.ratio

    def contains(self, value: float) -> bool:
        """True when ``value`` lies inside the CI (False without a CI)."""
        return self.low is not None and self.high is not None and self.low <= value <= self.high


PerJob = Callable[[np.ndarray], float]


def job_median(steps: np.ndarray) -> float:
    """The per-process estimator: the median of one process's step times."""
    return float(np.median(steps))


def job_low_quantile(steps: np.ndarray) -> float:
    """An alternative per-process estimator: the 10th percentile of its step times."""
    return float(np.percentile(steps, 10))


def paired_ratio(pairs: Sequence[tuple[Sequence[float], Sequence[float]]], per_job: PerJob = job_median,
                 method: str = "paired-t") -> RatioEstimate:
    """Ratio of treatment to baseline from pairs of processes, each ``(baseline steps, treatment steps)``.

    The point estimate is the geometric mean of the per-pair ratios of ``per_job`` (the median
    step time by default); the 95% CI is a Student-t interval on the log ratios, returned only
    with at least MIN_PAIRS_FOR_CI pairs. Units cancel. Raises ValueError without a pair.
    """
    complete = [(np.asarray(a, dtype=float), np.asarray(b, dtype=float)) for a, b in pairs if len(a) and len(b)]
    if not complete:
        raise ValueError("need at least one pair of processes with step times")
    logs = np.array([math.log(per_job(b) / per_job(a)) for a, b in complete])
    point = float(math.exp(logs.mean()))
    n = len(logs)
    if n < MIN_PAIRS_FOR_CI:
        return RatioEstimate(point, None, None, method, n,
                             f"{TOO_FEW_REPEATS} ({n} per mode; at least {MIN_PAIRS_FOR_CI} are needed)")
    spread = float(logs.std(ddof=1)) / math.sqrt(n)
    margin = float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * spread
    return RatioEstimate(point, math.exp(logs.mean() - margin), math.exp(logs.mean() + margin), method, n)


def unpaired_ratio(baseline: Sequence[Sequence[float]], treatment: Sequence[Sequence[float]],
                   seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> RatioEstimate:
    """median(all treatment steps) / median(all baseline steps), with a 95% cluster-bootstrap CI
    that resamples whole processes of each mode independently (percentile method).

    Each argument is a list of processes, each a list of step times. The CI needs at least
    MIN_PAIRS_FOR_CI processes per mode. Raises ValueError when a side has no steps.
    """
    base_repeats = [np.asarray(r, dtype=float) for r in baseline if len(r)]
    treat_repeats = [np.asarray(r, dtype=float) for r in treatment if len(r)]
    if not base_repeats or not treat_repeats:
        raise ValueError("both modes need at least one repeat with step times")
    point = float(np.median(np.concatenate(treat_repeats)) / np.median(np.concatenate(base_repeats)))
    n = min(len(base_repeats), len(treat_repeats))
    if n < MIN_PAIRS_FOR_CI:
        return RatioEstimate(point, None, None, "cluster-bootstrap", n,
                             f"{TOO_FEW_REPEATS} ({n} per mode; at least {MIN_PAIRS_FOR_CI} are needed)")

    def cluster_ratio(base_idx: np.ndarray, treat_idx: np.ndarray) -> float:
        base = np.concatenate([base_repeats[int(i)] for i in base_idx])
        treat = np.concatenate([treat_repeats[int(i)] for i in treat_idx])
        return float(np.median(treat) / np.median(base))

    result = scipy_stats.bootstrap((np.arange(len(base_repeats)), np.arange(len(treat_repeats))), cluster_ratio,
                                   vectorized=False, paired=False, n_resamples=resamples,
                                   confidence_level=CONFIDENCE, method="percentile",
                                   random_state=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return RatioEstimate(point, float(low), float(high), "cluster-bootstrap", n)


def plus_minus(half_width: float) -> str:
    """A relative CI half-width as people read it: 0.0213 -> "±2.2%", rounded up to a tenth of a
    percent (after rounding off float noise), so that the stated precision is never better than
    the interval. The one definition of ± that every line of detprof uses: the 95% CI's
    half-width over the ratio (RatioEstimate.half_width)."""
    return f"±{math.ceil(round(half_width * 1000, 6)) / 10:.1f}%"


def verdict(estimate: RatioEstimate | None, baseline: str, treatment: str) -> str:
    """The sentence a person reads first, e.g. "deterministic is 1.23x slower than default (95% CI
    1.19-1.27)" or "no difference resolved at ±2.1% (95% CI 0.979-1.021)", where ± is the
    CI's half-width over the ratio (``plus_minus``), as in the precision line."""
    if estimate is None:
        return "no ratio: every job of at least one mode failed"
    r = estimate.ratio
    if estimate.low is None or estimate.high is None:
        return f"{treatment} / {baseline}: x{r:.3f}; {estimate.reason}"
    ci = f"95% CI {estimate.low:.3f}-{estimate.high:.3f}"
    if estimate.low > 1.0:
        return f"{treatment} is {r:.3f}x slower than {baseline} ({ci})"
    if estimate.high < 1.0:
        return f"{treatment} is faster than {baseline}: x{r:.3f} the step time ({ci})"
    return f"no difference resolved at {plus_minus(estimate.half_width or 0.0)} ({ci})"
