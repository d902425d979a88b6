"""The tax gate's three outcomes on known intervals, its inconclusive policy, and its refusals;
the gate on a real overhead measurement is tested through the pytest plugin (test_ci_plugin.py)."""

from __future__ import annotations

import pytest

from detprof.ci.tax import FAIL, INCONCLUSIVE, PASS, judge_document, judge_tax
from detprof.errors import ArgumentError


@pytest.mark.parametrize(("ci", "limit", "outcome", "code"), [
    ((1.10, 1.20), 1.35, PASS, 0),  # the upper bound under the limit
    ((1.10, 1.35), 1.35, PASS, 0),  # at it: the CI allows no more than the limit
    ((1.40, 1.50), 1.35, FAIL, 1),  # the lower bound over it
    ((1.30, 1.40), 1.35, INCONCLUSIVE, 3),  # the CI holds it
    ((1.35, 1.40), 1.35, INCONCLUSIVE, 3),
])
def test_the_gate_judges_the_interval_not_the_ratio(ci: tuple[float, float], limit: float, outcome: str,
                                                    code: int) -> None:
    ratio = sum(ci) / 2
    verdict = judge_tax(ratio, ci, limit)
    assert (verdict.outcome, verdict.exit_code, verdict.passed) == (outcome, code, outcome == PASS)
    assert verdict.sentence.startswith(f"determinism tax {outcome}")


def test_a_ratio_under_the_limit_whose_interval_holds_it_is_not_a_pass() -> None:
    # Megatron's gate would pass x1.30 against 1.35; the interval says the tax may be 1.45
    assert judge_tax(1.30, (1.15, 1.45), 1.35).outcome == INCONCLUSIVE


def test_inconclusive_counts_as_chosen_and_says_so() -> None:
    as_failure = judge_tax(1.3, (1.2, 1.4), 1.35)
    as_pass = judge_tax(1.3, (1.2, 1.4), 1.35, inconclusive="pass")
    assert (as_failure.passed, as_failure.exit_code) == (False, 3)
    assert (as_pass.passed, as_pass.exit_code, as_pass.outcome) == (True, 0, INCONCLUSIVE)
    assert "counted as a failure" in as_failure.sentence and "counted as a pass" in as_pass.sentence


def test_no_interval_is_inconclusive() -> None:
    verdict = judge_document({"ratio": 1.02, "ratio_ci": None}, 100.0)
    assert verdict.outcome == INCONCLUSIVE and "no confidence interval" in verdict.sentence
    unmeasured = judge_document({"ratio": None, "ratio_ci": [None, None]}, 2.0)
    assert unmeasured.outcome == INCONCLUSIVE and "no ratio was measured" in unmeasured.sentence
    assert judge_document({"ratio": 1.0, "ratio_ci": [0.99, 1.01]}, 2.0).as_dict()["ci"] == [0.99, 1.01]


@pytest.mark.parametrize(("limit", "policy", "words"), [
    (0.0, FAIL, "--max-tax 0 is not accepted"), (float("inf"), FAIL, "--max-tax inf is not accepted"),
    (float("nan"), FAIL, "--max-tax nan is not accepted"), (1.35, "maybe", "--inconclusive 'maybe' is not accepted"),
])
def test_bad_limits_and_policies_are_refused(limit: float, policy: str, words: str) -> None:
    with pytest.raises(ArgumentError, match=words):
        judge_tax(1.0, (0.9, 1.1), limit, policy)
