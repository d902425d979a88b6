"""The protocol's pure rules: the pairs of timed steps, the paired ratio, when to stop adding
pairs, how many more a target would need, and what the jobs' hashes and warnings say about
determinism. No process, file or clock: a test gives them values."""

from __future__ import annotations

import math

from detprof.runner.config import Protocol
from detprof.runner.outcomes import JobOutcome
from detprof.stats import RatioEstimate, paired_ratio


def projected_pairs(pairs: int, achieved: float | None, target: float | None) -> int | None:
    """Pairs at which a CI half-width of ``achieved`` from ``pairs`` pairs would shrink to ``target``
    at the same spread (half-width ~ 1/sqrt(pairs)); None when there is nothing to project."""
    if not pairs or achieved is None or not target or achieved <= target:
        return None
    return math.ceil(pairs * (achieved / target) ** 2)


def changed_switches(outcomes: list[JobOutcome]) -> list[str]:
    """The switches some job found changed after its last step from what the mode had set (the
    workload's own code changed them), as ``name set -> found``, each once."""
    return list(dict.fromkeys(change for outcome in outcomes for change in outcome.switches_changed))


def observed_determinism(requested: bool, fully_requested: bool, hashes: list[str], warned_ops: list[str],
                         flagged_kernels: list[str], changed: list[str] | None = None) -> str:
    """What the repeats showed, not what was asked for.

    ``not as set`` when the workload's code changed a switch the mode set (``changed``); ``off``
    when determinism was not requested; otherwise ``differs across repeats`` when the repeats'
    parameter fingerprints differ, ``unverified (one repeat)`` with fewer than two fingerprints,
    ``not fully deterministic`` when they agree but an op warned that it has no deterministic
    implementation, the catalog flagged an atomics kernel, or not every toggle was on, and ``on``
    when at least two repeats trained bit-identically with none of those signs.
    """
    if changed:
        return "not as set: the workload changed " + ", ".join(changed)
    if not requested:
        return "off"
    if len(set(hashes)) > 1:
        return "differs across repeats"
    if len(hashes) < 2:
        return "unverified (one repeat)"
    if warned_ops or flagged_kernels or not fully_requested:
        return "not fully deterministic"
    return "on"


def pairs_of(outcomes: list[JobOutcome]) -> list[tuple[list[float], list[float]]]:
    """(baseline steps, treatment steps) of every pair whose two jobs both succeeded, in pair order."""
    by_pair: dict[int, dict[int, JobOutcome]] = {}
    for outcome in outcomes:
        by_pair.setdefault(outcome.spec.repeat, {})[outcome.spec.side] = outcome
    pairs = []
    for pair in sorted(by_pair):
        jobs = by_pair[pair]
        if all(side in jobs and jobs[side].ok and jobs[side].step_ms for side in (0, 1)):
            pairs.append((jobs[0].step_ms, jobs[1].step_ms))
    return pairs


def ratio_of(outcomes: list[JobOutcome]) -> RatioEstimate | None:
    pairs = pairs_of(outcomes)
    return paired_ratio(pairs) if pairs else None


# The precision target is checked from this many pairs on. With 3 or 4 pairs the spread of the log
# ratios is itself so uncertain that stopping as soon as the CI looks narrow stops on the pairs
# that happened to agree: in the A/A benchmark a resnet18 trial stopped at 3 pairs with a CI
# (0.965-0.995) that missed 1.0; replaying the recorded A/A jobs, the minimum of 5 raised coverage
# from 88% to 92% on the noisier small CNN (benchmarks/aa_test.py, docs/benchmarks.md).
MIN_PAIRS_FOR_PRECISION = 5


def stop_reason(protocol: Protocol, pairs_run: int, ratio: RatioEstimate | None, elapsed_s: float,
                 pair_seconds: list[float], failures: int) -> str | None:
    """Why to stop adding pairs now, or None to run another.

    The time budget is kept: from MIN_PAIRS_FOR_CI pairs on (the fewest that give a CI at all), no
    pair starts that would overrun it, even before ``protocol.repeats`` pairs ran; on a machine too
    slow for the minimum, the run stops with a wide CI and says so rather than overrunning."""
    if not protocol.adaptive:
        return None if pairs_run < protocol.repeats else "fixed-repeats"
    if pairs_run < protocol.budget_floor:
        return None
    half_width = ratio.half_width if ratio else None
    if (pairs_run >= protocol.repeats and half_width is not None and half_width <= (protocol.precision or 0.0)
            and pairs_run >= MIN_PAIRS_FOR_PRECISION):
        return "precision"
    # Failures do not average out: a job that failed three times, or a mode with no successful
    # job yet, will not reach the target by repetition.
    if failures >= 3 or ratio is None:
        return "failures"
    if pairs_run >= protocol.max_repeats:
        return "max-repeats"
    if protocol.max_time_s is not None and elapsed_s + max(pair_seconds[-3:]) > protocol.max_time_s:
        return "max-time"
    return None
