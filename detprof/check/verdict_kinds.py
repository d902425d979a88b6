"""The verdict kinds, declared once: check, batch invariance, audit, advise, the inference grid, and
records and their comparisons. Each is a row of
``VERDICTS``: how its document reads as an outcome (exit code and words: 0 passes, 1 fails, 3 a
check that could not have seen a difference), the device and modes it is stored under, and what
the report's Reproducibility section says it found. The command line's exit code, the store
(detprof.check.record) and the report (detprof.report.collect) read this table; a renderer of
the same name prints each (detprof.render.RENDERERS).

Adding a verdict kind: a row here, its document type in detprof.documents, a renderer, and the
command or API call that produces it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from detprof.documents import COMPARISON_EXIT_CODES, IDENTICAL, NOT_IDENTICAL, RECORDS_DIFFER, RECORDS_EQUAL

Document = Mapping[str, Any]


@dataclass(frozen=True)
class VerdictKind:
    """One kind of verdict (see the module docstring)."""

    name: str  # the run kind it is stored under, and its renderer's name
    outcome: Callable[[Document], tuple[int, str]]  # (exit code, the verdict in words)
    findings: Callable[[Document], list[str]]  # what the report says it found, in words
    modes: Callable[[Document], list[str]] = lambda d: [d.get("mode") or "deterministic"]  # the modes it judged


def _check_outcome(document: Document) -> tuple[int, str]:
    from detprof.check.verdict import EXIT_CODES

    # a check stored before verdicts had a third outcome reads as what its comparison found
    verdict = document.get("verdict") or (IDENTICAL if document["bitwise_identical"] else NOT_IDENTICAL)
    return EXIT_CODES[verdict], "bitwise identical" if verdict == IDENTICAL else verdict


def _invariance_outcome(document: Document) -> tuple[int, str]:
    passed = bool(document["batch_invariant"])
    return (0, "batch invariant") if passed else (1, "not batch invariant")


def _audit_outcome(document: Document) -> tuple[int, str]:
    count = len(document["nondeterministic_ops"])
    if document.get("switched_off"):
        return 1, "its step turns deterministic algorithms off"
    return (0, "can train fully deterministically") if count == 0 else \
        (1, f"{count} op(s) without a deterministic implementation")


def _advise_outcome(document: Document) -> tuple[int, str]:
    recommendation = document.get("recommendation")
    return (0, f"recommends {recommendation['mode']}") if recommendation else \
        (1, "no candidate mode was bitwise reproducible")


def _inference_outcome(document: Document) -> tuple[int, str]:
    if not document["sensitivity"]["caught"]:
        return 3, "inconclusive: the comparison missed a 1-ulp change in one logit"
    differing = document["differing_rows"]
    return (0, "bitwise equal in every row") if not differing else (1, f"differs in {', '.join(differing)}")


def _inference_findings(summary: Document) -> list[str]:
    findings = []
    for row in summary.get("rows", []):
        worst_cell = max(row["cells"], key=lambda cell: cell["max_abs_logit_diff"], default=None)
        detail = f" (max |Δ logit| {worst_cell['max_abs_logit_diff']:.3g})" if worst_cell and row["verdict"] != \
            "bitwise" else ""
        findings.append(f"{row['row']}: {row['verdict']}{detail}")
    return findings


def _cost_outcome(document: Document) -> tuple[int, str]:
    rows = document["rows"]
    if not rows or any(row["decode_ci"][0] is None for row in rows):
        return 3, "no interval: too few pairs"
    words = ", ".join(f"x{row['decode_ratio']:.2f} at batch {row['batch_size']}" for row in rows)
    return 0, f"batch-invariant decode step time {words}"


def _cost_findings(summary: Document) -> list[str]:
    findings = []
    for row in summary.get("rows", []):
        low, high = row["decode_ci"]
        interval = f" (95% CI {low:.3f}-{high:.3f})" if low is not None else ""
        findings.append(f"batch {row['batch_size']}: decode step time x{row['decode_ratio']:.3f}{interval}, "
                        f"prefill x{row['prefill_ratio']:.3f}")
    return findings


def _mismatch_outcome(document: Document) -> tuple[int, str]:
    given = document["pairs"][0]
    if given["bitwise_equal"]:
        return 0, "sampler and trainer log-probs bitwise equal"
    fixed = document["bitwise_remedies"]
    return 1, (f"log-probs differ (max |Δ| {given['max_abs_logprob_diff']:.3g})"
               + (f"; bitwise with {fixed[0]}" if fixed else "; no remedy made them bitwise equal"))


def _mismatch_findings(summary: Document) -> list[str]:
    return [f"{row['remedy']}: max |Δ log-prob| {row['max_abs_logprob_diff']:.3g}"
            + (" (bitwise equal)" if row["bitwise_equal"] else "") for row in summary.get("pairs", [])]


def op_words(op: Mapping[str, Any]) -> str:
    """A located op in words: its name, module, pass and kind (root-cause, input-differs, ...)."""
    return f"{op['op']} in {op['module'] or '(no module)'}, {op['phase']} ({op['kind']})"


def divergence_findings(divergence: Mapping[str, Any] | None) -> list[str]:
    """Where two runs or records parted, in words: the first divergent step and parameter, and the
    first divergent op when one was located; [] when they did not part."""
    if not divergence:
        return []
    findings = [f"first divergent step {divergence['step']}, parameter {divergence['parameter'] or '—'}"]
    if divergence.get("op"):
        findings.append(f"first divergent op {op_words(divergence['op'])}")
    return findings


def _check_findings(summary: Document) -> list[str]:
    return [*divergence_findings(summary.get("first_divergence")),
            f"max |weight difference| {summary.get('max_abs_diff', 0):.3g}"]


def _audit_findings(summary: Document) -> list[str]:
    findings = []
    for op in summary.get("nondeterministic_ops", []):
        sites = ", ".join(f"{site['module']} ({site['phase']}) x{site['count']}" for site in op.get("sites", []))
        findings.append(f"{op['op']}: {sites or ', '.join(op.get('modules', []))}")
    return findings


def _advise_findings(summary: Document) -> list[str]:
    findings = []
    for row in summary.get("candidates", []):
        state = ("bitwise identical" if row["bitwise_identical"] else
                 f"differs from step {row['first_divergent_step']}")
        measured = row.get("ratio") is not None and row["mode"] != "default"
        cost = f", step time x{row['ratio']:.3f}" if measured else ""
        findings.append(f"{row['mode']}: {state}{cost}")
    return findings


def _invariance_findings(summary: Document) -> list[str]:
    return [f"batch {r['batch_size']}: {100 * r['fraction_equal']:.1f}% bitwise equal" for r in summary.get("rows", [])]


def _record_outcome(document: Document) -> tuple[int, str]:
    return 0, f"recorded {document['steps']} step(s)"


def _record_findings(summary: Document) -> list[str]:
    record = summary["record"]
    last = record["steps"][-1].get("loss") if record["steps"] else None
    loss = f", last loss {float.fromhex(last):.6g}" if last else ""
    ops = record["configuration"].get("ops_at") or []
    return [f"{len(record['steps'])} step(s) in {record['configuration']['mode']} mode{loss}"
            + (f"; ops of step {', '.join(map(str, ops))}" if ops else "")]


def _compare_outcome(document: Document) -> tuple[int, str]:
    verdict = document["verdict"]
    divergence = document.get("first_divergence")
    if verdict == RECORDS_DIFFER and divergence:
        return COMPARISON_EXIT_CODES[verdict], f"records differ from step {divergence['step']}"
    return COMPARISON_EXIT_CODES[verdict], "records bitwise equal" if verdict == RECORDS_EQUAL else str(verdict)


def _compare_findings(summary: Document) -> list[str]:
    findings = divergence_findings(summary.get("first_divergence"))
    findings += [f"{row['field']}: {row['a']} vs {row['b']}" for row in summary.get("configuration_differences", [])]
    findings += [f"{row['factor']}: {row['a']} vs {row['b']}" for row in summary.get("environment_differences", [])
                 if row["relevant"]][:3]
    return findings


VERDICTS: dict[str, VerdictKind] = {kind.name: kind for kind in (
    VerdictKind("check", _check_outcome, _check_findings),
    VerdictKind("batch-invariance", _invariance_outcome, _invariance_findings),
    VerdictKind("audit", _audit_outcome, _audit_findings),
    VerdictKind("advise", _advise_outcome, _advise_findings,
                modes=lambda d: [row["mode"] for row in d["candidates"]]),
    VerdictKind("inference", _inference_outcome, _inference_findings),
    VerdictKind("inference-cost", _cost_outcome, _cost_findings, modes=lambda d: list(d["modes"])),
    VerdictKind("inference-mismatch", _mismatch_outcome, _mismatch_findings,
                modes=lambda d: sorted({row["mode"] for row in d["pairs"]})),
    VerdictKind("record", _record_outcome, _record_findings),
    VerdictKind("compare", _compare_outcome, _compare_findings, modes=lambda d: list(d["modes"])),
)}
VERDICT_KINDS = tuple(VERDICTS)


def outcome_of(kind: str, document: Document) -> tuple[int, str]:
    """(exit code, the verdict in words) of a document of verdict kind ``kind``."""
    return VERDICTS[kind].outcome(document)


def verdict_of(kind: str, document: Document) -> tuple[bool, str]:
    """(passed, the verdict in words) of a verdict document: passed only with exit code 0."""
    code, words = outcome_of(kind, document)
    return code == 0, words
