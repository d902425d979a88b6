"""``detprof compare A B`` as a Python API: are two records bitwise equal, and if not, where did
they part, how far apart did they end, and what about how or where they were made could explain it.

Two records are comparable when they are of one workload (detprof.records.format.identity) with
one digest scheme; their steps are compared up to the shorter one's last. The comparison of bits
is detprof.check.compare's, so a NaN never reads as equal to anything but the same bits, and
record A's own 1-ulp control is run every time: a comparison that misses it is inconclusive.
"""

from __future__ import annotations

import json
import math
from typing import Any

from detprof.check.compare import first_divergence, first_divergent_op, nonfinite_steps, sensitivity
from detprof.documents import (
    COMPARISON_EXIT_CODES,
    DOCUMENT_VERSION,
    RECORDS_DIFFER,
    RECORDS_EQUAL,
    RECORDS_INCONCLUSIVE,
    ComparisonDocument,
)
from detprof.records.explain import ranked_differences
from detprof.records.format import Record, RecordError, identity, sketch_distance

EQUAL, DIFFER, INCONCLUSIVE = RECORDS_EQUAL, RECORDS_DIFFER, RECORDS_INCONCLUSIVE
EXIT_CODES = COMPARISON_EXIT_CODES
# Configuration fields shown when two records were made differently (the rest is bookkeeping).
CONFIGURATION_FIELDS = ("mode", "seed", "learning_rate", "arguments", "pythonhashseed", "device", "device_name",
                        "threads", "compiled", "steps")


def require_comparable(a: Record, b: Record, labels: tuple[str, str]) -> None:
    """RecordError in one line when ``a`` and ``b`` are not of one workload or digest scheme."""
    id_a, id_b = identity(a), identity(b)
    if _canonical(id_a) != _canonical(id_b):  # as text: a NaN in a damaged record equals itself there
        field = next((k for k in sorted(set(id_a) | set(id_b), key=str)
                      if _canonical(id_a.get(k)) != _canonical(id_b.get(k))), "workload")
        raise RecordError(f"records {labels[0]!r} and {labels[1]!r} are of different workloads ({field} "
                          f"{id_a.get(field)!r} vs {id_b.get(field)!r}); compare two records of one workload")
    if a["digest_scheme"] != b["digest_scheme"]:
        raise RecordError(f"records {labels[0]!r} and {labels[1]!r} hash tensors differently "
                          f"({a['digest_scheme']} vs {b['digest_scheme']}); record both with one detprof")


def is_inference(record: Record) -> bool:
    """True for a record of a decoding (detprof.records.inference): its steps are tokens, its
    parameters prompts."""
    return record["workload"].get("kind") == "inference"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _loss(step: dict[str, Any]) -> float | None:
    text = step.get("loss")
    try:
        return float.fromhex(text) if text else None
    except (TypeError, ValueError):
        return None


def growth(a: Record, b: Record, start: int, steps: int) -> list[dict[str, Any]]:
    """From step ``start`` (1-based) to ``steps``: per step, the parameters whose digests differ,
    both losses and their absolute difference, and the estimated L2 distance of the weights
    (None without sketches)."""
    rows = []
    names = a["parameters"]
    for number in range(max(start, 1), steps + 1):
        step_a, step_b = a["steps"][number - 1], b["steps"][number - 1]
        differing = sum(x != y for x, y in zip(step_a["params"], step_b["params"], strict=True))
        loss_a, loss_b = _loss(step_a), _loss(step_b)
        loss_diff = abs(loss_a - loss_b) if loss_a is not None and loss_b is not None else None
        distance = 0.0 if differing == 0 else sketch_distance(step_a.get("sketch"), step_b.get("sketch"))
        row = {"step": number, "parameters_differing": differing, "parameters": len(names), "loss_a": loss_a,
               "loss_b": loss_b, "loss_diff": loss_diff if loss_diff is None or math.isfinite(loss_diff) else math.inf,
               "weight_distance": distance}
        if isinstance(step_a.get("tokens"), list) and isinstance(step_b.get("tokens"), list):  # a decoding's
            row["tokens_differing"] = sum(x != y for x, y in zip(step_a["tokens"], step_b["tokens"], strict=False))
        rows.append(row)
    return rows


def _configuration_differences(a: Record, b: Record) -> list[dict[str, Any]]:
    conf_a, conf_b = a["configuration"], b["configuration"]
    return [{"field": name, "a": conf_a.get(name), "b": conf_b.get(name)} for name in CONFIGURATION_FIELDS
            if conf_a.get(name) != conf_b.get(name)]


def _structure_divergence(a: Record, b: Record) -> dict[str, Any] | None:
    """Step 0 when the two models' parameters or buffers are not the same list (edited code)."""
    for kind in ("parameters", "buffers"):
        if a[kind] != b[kind]:  # type: ignore[literal-required]
            pairs = zip(a[kind], b[kind], strict=False)  # type: ignore[literal-required]
            first = next(((x, y) for x, y in pairs if x != y), None)
            return {"step": 0, "structure": kind, "parameter": first[0] if first else None,
                    "other": first[1] if first else None, "loss_differs": False, "parameters_differing": None,
                    "counts": [len(a[kind]), len(b[kind])]}  # type: ignore[literal-required]
    return None


def compare_records(a: Record, b: Record, labels: tuple[str, str] = ("A", "B")) -> ComparisonDocument:
    """Compare two records (see the module docstring). Returns the comparison document: ``verdict``
    (equal, differ or inconclusive, with ``verdict_reasons``), ``steps_compared``,
    ``first_divergence`` (step, parameter, how many differ, and ``op`` when both records hold that
    step's ops), ``growth`` (per step from the first divergent one to the last), the
    ``configuration_differences`` and the ``environment_differences``, ranked. RecordError when the
    two are not comparable."""
    require_comparable(a, b, labels)
    steps = min(len(a["steps"]), len(b["steps"]))
    divergence = _structure_divergence(a, b)
    if divergence is None:
        divergence = first_divergence({**a, "steps": a["steps"][:steps]}, {**b, "steps": b["steps"][:steps]})
    op_note = None
    if divergence and divergence["step"] >= 1 and divergence.get("structure") is None:
        key = str(divergence["step"])
        ops_a, ops_b = (a.get("ops") or {}).get(key), (b.get("ops") or {}).get(key)
        if ops_a is not None and ops_b is not None:
            divergence["op"] = first_divergent_op(ops_a, ops_b)
            divergence["ops_recorded"] = len(ops_a)
        elif a["configuration"].get("compiled") or b["configuration"].get("compiled"):
            op_note = "a compiled record holds no op record: Inductor replaces the eager ops, so none can be named"
        elif is_inference(a):
            op_note = (f"an inference record holds no op record; `detprof infer --locate-op` names the module where "
                       f"a row of the grid parts at token {key}")
        else:
            op_note = (f"no op record of step {key} in {'either record' if ops_a is None and ops_b is None else 'one'}:"
                       f" record both with --ops-at {key} to name the op")
    control = sensitivity(dict(a))
    nonfinite = [found for found in (nonfinite_steps({"steps": a["steps"][:steps]}),
                                     nonfinite_steps({"steps": b["steps"][:steps]})) if found]
    reasons = []
    if control is None or not control["detected"]:
        reasons.append("the comparison missed a 1-ulp change in one parameter (record A's control)")
    if nonfinite:
        reasons.append(f"a NaN or an infinity from step {min(f['step'] for f in nonfinite)}: equal bits there prove "
                       "little")
    if steps == 0:
        reasons.append("no step to compare")
    verdict = DIFFER if divergence else (INCONCLUSIVE if reasons else EQUAL)
    if len(a["steps"]) != len(b["steps"]):
        reasons.append(f"the records hold {len(a['steps'])} and {len(b['steps'])} steps: {steps} compared")
    devices = {a["configuration"].get("device", "cpu"), b["configuration"].get("device", "cpu")}
    return {"document_version": DOCUMENT_VERSION, "labels": list(labels), "verdict": verdict,
            "subject": "decoding" if is_inference(a) else "training",
            "verdict_reasons": reasons, "workload": a["workload"],
            "framework": a.get("framework", "pytorch"), "steps_compared": steps, "first_divergence": divergence,
            "op_note": op_note, "sensitivity": control,
            "growth": growth(a, b, divergence["step"], steps) if divergence and not divergence.get("structure")
            else [],
            "configuration_differences": _configuration_differences(a, b),
            "environment_differences": ranked_differences(a["environment"], b["environment"], devices),
            "records": [_summary(a), _summary(b)]}


def _summary(record: Record) -> dict[str, Any]:
    """What a comparison says of each record: when and with what it was made."""
    environment = record["environment"]
    gpu = environment["gpu"] if isinstance(environment.get("gpu"), dict) else {}
    return {"created_at": record.get("created_at"), "detprof": record.get("detprof"),
            "configuration": record["configuration"], "torch": environment.get("torch"),
            "device": gpu.get("name") or environment.get("cpu"), "steps": len(record["steps"])}
