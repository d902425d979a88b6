"""Comparing two check runs: where their training first parted, the first op that made it part,
and the largest difference between their final weights. Pure Python and numpy: it reads the
documents every backend's check runs write, whatever the framework."""

from __future__ import annotations

from typing import Any

import numpy as np


def max_abs_diff(state_a: dict[str, Any], state_b: dict[str, Any]) -> float:
    """Largest absolute difference over every floating array of two states (name to numpy array);
    inf when an integer buffer or a shape differs."""
    worst = 0.0
    for name, a in state_a.items():
        b = state_b[name]
        if a.shape != b.shape:
            return float("inf")
        if np.issubdtype(a.dtype, np.floating):
            if a.size:
                worst = max(worst, float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()))
        elif not np.array_equal(a, b):
            return float("inf")
    return worst


def first_divergence(run_a: dict[str, Any], run_b: dict[str, Any]) -> dict[str, Any] | None:
    """The first step (1-based) where the loss or a parameter differs, and the first such parameter in
    module order; None when every step agrees bit for bit."""
    names = run_a["parameters"]
    for number, (a, b) in enumerate(zip(run_a["steps"], run_b["steps"], strict=True), start=1):
        params = [name for name, x, y in zip(names, a["params"], b["params"], strict=True) if x != y]
        if a["loss"] != b["loss"] or params:
            return {"step": number, "loss_differs": a["loss"] != b["loss"],
                    "parameter": params[0] if params else None, "parameters_differing": len(params)}
    return None


def sensitivity(run: dict[str, Any]) -> dict[str, Any] | None:
    """The check's control on itself: run A's step 1 against the same step with one element of one
    parameter moved by one ulp (the run's ``ulp_control``), through ``first_divergence``. Returns
    the change, the parameter, and ``detected`` (False would mean an "identical" verdict could not
    have seen such a change); None when the run recorded no control."""
    control = run.get("ulp_control")
    if not control or not run["steps"]:
        return None
    first = run["steps"][0]
    found = first_divergence({"parameters": run["parameters"], "steps": [first]},
                             {"parameters": run["parameters"], "steps": [{**first, "params": control["params"]}]})
    return {"change": "one ulp", "step": 1, "parameter": control["parameter"],
            "detected": found is not None and found["parameter"] == control["parameter"]}


def first_divergent_op(ops_a: list[dict[str, Any]], ops_b: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Where two records of the same step part: the first op whose output differs while its inputs
    matched (``kind`` root-cause), or, when its inputs already differed, the first op that saw a
    difference coming from outside the dispatcher (``kind`` input-differs: a value made in Python
    or NumPy, say), or the first place the op sequences themselves differ. None when they agree."""
    for a, b in zip(ops_a, ops_b, strict=False):
        where = {"index": a["index"], "op": a["op"], "phase": a["phase"], "module": a["module"]}
        if a["op"] != b["op"]:
            return {**where, "kind": "different-ops", "other_op": b["op"]}
        if a.get("outputs") != b.get("outputs"):
            kind = "root-cause" if a.get("inputs") == b.get("inputs") else "input-differs"
            return {**where, "kind": kind}
    if len(ops_a) != len(ops_b):
        shorter = min(len(ops_a), len(ops_b))
        return {"index": shorter, "op": None, "phase": None, "module": None, "kind": "different-length"}
    return None
