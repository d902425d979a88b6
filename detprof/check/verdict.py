"""A check's verdict from what its runs recorded: identical, not identical, or inconclusive.

"Identical" is only said when the check could have seen a difference. Two runs whose digests all
match are still inconclusive when:
- the sensitivity control was not recorded, or a 1-ulp change at step 1 was not detected;
- a loss, a parameter or a buffer was a NaN or an infinity (bits still compare, but a NaN spreads
  and then every run looks alike);
- the factor the gate varies did not differ as the runs ran (a script pinning its own threads);
- the mode did not hold: a switch it set was changed by the user's code (read back after every
  step, and every call to ``torch.use_deterministic_algorithms`` seen).
A difference found is always a real one: "not identical" never waits on these.

Exit codes: 0 identical, 1 not identical, 3 inconclusive (2 is bad input).
"""

from __future__ import annotations

from typing import Any

from detprof.check.compare import nonfinite_state, nonfinite_steps
from detprof.documents import IDENTICAL, INCONCLUSIVE, NOT_IDENTICAL

EXIT_CODES = {IDENTICAL: 0, NOT_IDENTICAL: 1, INCONCLUSIVE: 3}
INCONCLUSIVE_EXIT = EXIT_CODES[INCONCLUSIVE]


def _sensitivity_reason(control: dict[str, Any] | None) -> list[str]:
    if control is None:
        return ["no sensitivity control was recorded, so nothing shows that this check could have seen a difference"]
    if not control["detected"]:
        return [f"a 1-ulp change at step 1 in {control['parameter']} was not detected: the digests compared could "
                "not have seen a difference"]
    return []


def _joined(per_run: dict[str, str]) -> list[str]:
    """One reason per run (``{"A": text}``), said once for both when they say the same."""
    if len(per_run) == 2 and len(set(per_run.values())) == 1:
        return [f"runs A and B: {next(iter(per_run.values()))}"]
    return [f"run {label}: {text}" for label, text in per_run.items()]


def _nonfinite_reasons(runs: list[dict[str, Any]]) -> list[str]:
    reasons: dict[str, str] = {}
    for label, run in zip("AB", runs, strict=False):
        found = nonfinite_steps(run)
        if found:
            what = [f"the loss was {found['loss']}"] if found["loss"] else []
            if found["tensors"]:
                shown = ", ".join(found["tensors"][:3]) + (", ..." if len(found["tensors"]) > 3 else "")
                what.append(f"{len(found['tensors'])} tensor(s) held a NaN or an infinity ({shown})")
            reasons[label] = f"at step {found['step']} {' and '.join(what)}; a NaN spreads and makes runs look alike"
            continue
        final = nonfinite_state(run["state"]) if run.get("state") is not None else []
        if final:
            reasons[label] = f"the final weights hold a NaN or an infinity ({', '.join(final[:3])})"
    return _joined(reasons)


def threads_run(run: dict[str, Any]) -> list[int]:
    """The CPU thread counts a run's steps actually had, distinct, in the order met (its final count
    when its steps recorded none)."""
    seen: list[int] = []
    for step in run["steps"]:
        count = step.get("threads")
        if count is not None and count not in seen:
            seen.append(count)
    if not seen and run.get("threads") is not None:
        seen.append(int(run["threads"]))
    return seen


def _threads_reason(runs: list[dict[str, Any]], wanted: tuple[int, int]) -> list[str]:
    """Why a thread gate did not test what it varies: at some step both runs had the same count."""
    for number, (a, b) in enumerate(zip(runs[0]["steps"], runs[1]["steps"], strict=False), start=1):
        if a.get("threads") is not None and a.get("threads") == b.get("threads"):
            return [f"the runs were to differ in CPU threads ({wanted[0]} vs {wanted[1]}), but both ran step {number} "
                    f"with {a['threads']} (the code under test sets its own): the factor did not differ"]
    return []


def switch_changes(run: dict[str, Any]) -> list[str]:
    """What in a run changed a switch its mode set: each switch read back changed after a step (first
    step only), and each call to ``torch.use_deterministic_algorithms`` that left it otherwise."""
    found: dict[str, str] = {}
    for number, step in enumerate(run["steps"], start=1):
        for switch, (was, now) in (step.get("switches_changed") or {}).items():
            found.setdefault(switch, f"{switch} was {now} after step {number} (the mode set {was})")
    if not run.get("switches_set"):
        return list(found.values())  # nothing was set (a script as it is): nothing to hold
    expected = run["switches_set"].get("deterministic_algorithms")
    for call in run.get("switch_calls") or []:
        if call.get("switch") == "deterministic_algorithms" and call.get("after") != expected:
            found.setdefault("call:" + call["call"], f"{call['call']} in step {call['step']}")
    return list(found.values())


def _mode_reasons(runs: list[dict[str, Any]], mode: str) -> list[str]:
    reasons: dict[str, str] = {}
    for label, run in zip("AB", runs, strict=False):
        changes = switch_changes(run)
        if changes:
            reasons[label] = f"mode {mode} did not hold, the code under test changed it: " + "; ".join(changes[:3])
    return _joined(reasons)


def conclude_check(bitwise_identical: bool, runs: list[dict[str, Any]], control: dict[str, Any] | None, mode: str,
                   thread_gate: tuple[int, int] | None = None) -> tuple[str, list[str]]:
    """(verdict, reasons): NOT_IDENTICAL when the runs differ (reasons: what did not run as asked);
    otherwise IDENTICAL, or INCONCLUSIVE with every reason this check could not have seen a
    difference (see the module's docstring).
    ``thread_gate`` is the (A, B) thread counts a thread gate asked for."""
    held = _mode_reasons(runs, mode)  # what did not run as asked: said beside a difference too
    if thread_gate and thread_gate[0] != thread_gate[1]:
        held += _threads_reason(runs, thread_gate)
    if not bitwise_identical:
        return NOT_IDENTICAL, held
    reasons = _sensitivity_reason(control) + _nonfinite_reasons(runs) + held
    return (INCONCLUSIVE if reasons else IDENTICAL), reasons
