"""The tax gate: does determinism cost at most a limit for this workload, judged on the overhead
ratio's 95% confidence interval rather than on one noisy number.

The ratio is the deterministic mode's step time over the default's (``detprof overhead``). The
gate passes when the interval's upper bound is at or under the limit, fails when its lower bound
is over it, and is inconclusive when the interval holds the limit (or there is no interval): more
pairs would be needed to tell. An inconclusive gate is reported as such and counts as a failure
unless the caller chose otherwise. Pure Python: it judges a document the overhead API returned.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from detprof.errors import require

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
INCONCLUSIVE_POLICIES = (PASS, FAIL)
EXIT_CODES = {PASS: 0, FAIL: 1, INCONCLUSIVE: 3}  # inconclusive counted as a failure; as a pass it exits 0
MAX_LIMIT = 1000.0


@dataclass(frozen=True)
class TaxVerdict:
    """One judgement of the gate: the ``outcome`` (pass, fail or inconclusive), whether it ``passed``
    once the inconclusive policy is applied, the limit, the measured ratio and its 95% CI (None
    where there is none), and a sentence for people."""

    outcome: str
    passed: bool
    limit: float
    ratio: float | None
    ci: tuple[float, float] | None
    inconclusive_counts_as: str
    sentence: str

    @property
    def exit_code(self) -> int:
        """0 when it passed, 1 when it failed, 3 when it was inconclusive and counted as a failure."""
        return 0 if self.passed else EXIT_CODES[self.outcome]

    def as_dict(self) -> dict[str, Any]:
        """The verdict as JSON-able values (``ci`` a list)."""
        values = asdict(self)
        values["ci"] = list(self.ci) if self.ci else None
        return values


def require_limit(limit: float, inconclusive: str = FAIL, option: str = "--max-tax") -> None:
    """ArgumentError in one line for a limit that is not a ratio of step times above 0 (deterministic
    over default: 1.35 allows 35% slower), or an inconclusive policy other than pass or fail."""
    require(math.isfinite(limit) and 0.0 < limit <= MAX_LIMIT,
            f"{option} {limit:g} is not accepted; use a ratio of step times above 0 and at most {MAX_LIMIT:g} "
            "(1.35: at most 35% slower)")
    require(inconclusive in INCONCLUSIVE_POLICIES,
            f"--inconclusive {inconclusive!r} is not accepted; use pass or fail")


def judge_tax(ratio: float | None, ci: tuple[float | None, float | None] | list[float | None] | None, limit: float,
              inconclusive: str = FAIL) -> TaxVerdict:
    """The gate's verdict for a measured ``ratio`` and its 95% ``ci`` against ``limit`` (see the
    module docstring); ``inconclusive`` says what an inconclusive outcome counts as."""
    require_limit(limit, inconclusive)
    low, high = (ci[0], ci[1]) if ci else (None, None)
    interval = None
    if ratio is None:
        outcome, why = INCONCLUSIVE, "no ratio was measured (every job of a mode failed)"
    elif low is None or high is None:
        outcome, why = INCONCLUSIVE, f"x{ratio:.3f} has no confidence interval (too few pairs)"
    else:
        interval = (float(low), float(high))
        span = f"x{ratio:.3f} (95% CI {low:.3f}-{high:.3f})"
        if high <= limit:
            outcome, why = PASS, f"{span} is under the limit x{limit:g}"
        elif low > limit:
            outcome, why = FAIL, f"{span} is over the limit x{limit:g}"
        else:
            outcome, why = INCONCLUSIVE, f"{span} holds the limit x{limit:g}: more pairs would tell"
    passed = outcome == PASS or (outcome == INCONCLUSIVE and inconclusive == PASS)
    counted = f", counted as a {'pass' if passed else 'failure'}" if outcome == INCONCLUSIVE else ""
    return TaxVerdict(outcome, passed, limit, ratio, interval, inconclusive,
                      f"determinism tax {outcome}{counted}: {why}")


def judge_document(document: dict[str, Any], limit: float, inconclusive: str = FAIL) -> TaxVerdict:
    """The gate's verdict on an overhead document (``detprof overhead --json``, run_overhead)."""
    return judge_tax(document.get("ratio"), document.get("ratio_ci"), limit, inconclusive)
