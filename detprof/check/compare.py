"""Comparing two check runs: where their training first parted, the first op that made it part,
and how their final weights differ. Pure Python and numpy: it reads the documents every backend's
check runs write, whatever the framework.

A run document holds ``parameters`` (names) and ``steps`` (per step: ``loss`` as the exact bits in
hex, ``params``: one digest per parameter), and may hold ``buffers`` (names) with per-step
``buffers`` digests, ``initial`` (the digests before the first step), and per-step ``nonfinite``
(names of tensors holding a NaN or an infinity). Every comparison is of bits: a NaN matches a NaN
with the same bits and nothing else, so a NaN can never hide a difference.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

NONFINITE_LOSSES = ("nan", "inf", "-inf")  # float.hex() of the values a comparison of bits cannot vouch for


def _bits(array: np.ndarray) -> np.ndarray:
    """The array's elements as unsigned integers of the same width (its exact bits)."""
    contiguous = np.ascontiguousarray(array)
    return contiguous.view(f"u{contiguous.dtype.itemsize}") if contiguous.dtype.itemsize in (1, 2, 4, 8) else \
        contiguous.view(np.uint8)


def states_bitwise_equal(state_a: dict[str, Any], state_b: dict[str, Any]) -> bool:
    """True when two states (name to numpy array) hold the same names, dtypes, shapes and bits."""
    if set(state_a) != set(state_b):
        return False
    return all(a.dtype == state_b[name].dtype and a.shape == state_b[name].shape
               and np.array_equal(_bits(a), _bits(state_b[name])) for name, a in state_a.items())


def max_abs_diff(state_a: dict[str, Any], state_b: dict[str, Any]) -> float:
    """Largest absolute difference over the elements whose bits differ, over every floating array
    of two states (name to numpy array); inf when a differing element is a NaN or an infinity in
    either state, an integer buffer differs, or a name, dtype or shape differs. 0.0 can still come
    with differing bits (0.0 against -0.0): ``states_bitwise_equal`` is the verdict, this is its size."""
    if set(state_a) != set(state_b):
        return math.inf
    worst = 0.0
    for name, a in state_a.items():
        b = state_b[name]
        if a.shape != b.shape or a.dtype != b.dtype:
            return math.inf
        differ = _bits(a) != _bits(b)
        if not differ.any():
            continue
        if not np.issubdtype(a.dtype, np.floating):
            return math.inf
        wide_a, wide_b = a.astype(np.float64)[differ], b.astype(np.float64)[differ]
        if not (np.isfinite(wide_a).all() and np.isfinite(wide_b).all()):
            return math.inf
        worst = max(worst, float(np.abs(wide_a - wide_b).max()))
    return worst


def nonfinite_state(state: dict[str, Any]) -> list[str]:
    """Names of the floating arrays of a state that hold a NaN or an infinity."""
    return [name for name, a in state.items()
            if np.issubdtype(a.dtype, np.floating) and a.size and not np.isfinite(a.astype(np.float64)).all()]


def _differing(names: list[str], a: list[str], b: list[str]) -> list[str]:
    return [name for name, x, y in zip(names, a, b, strict=True) if x != y]


def first_divergence(run_a: dict[str, Any], run_b: dict[str, Any]) -> dict[str, Any] | None:
    """The first step where the loss, a parameter or a buffer differs (1-based; 0: the weights
    already differed before the first step), with the first such parameter in module order
    (``parameter``; a buffer when no parameter differs, named in ``buffer`` too) and how many
    differ; None when every step agrees bit for bit."""
    names, buffer_names = run_a["parameters"], run_a.get("buffers") or []
    initial_a, initial_b = run_a.get("initial"), run_b.get("initial")
    records = list(zip(run_a["steps"], run_b["steps"], strict=True))
    if initial_a and initial_b:
        records.insert(0, (initial_a, initial_b))
    first_number = 0 if initial_a and initial_b else 1
    for number, (a, b) in enumerate(records, start=first_number):
        params = _differing(names, a["params"], b["params"])
        buffers = _differing(buffer_names, a.get("buffers") or [], b.get("buffers") or []) if buffer_names else []
        loss_differs = a.get("loss") != b.get("loss")
        if loss_differs or params or buffers:
            found = {"step": number, "loss_differs": loss_differs,
                     "parameter": params[0] if params else buffers[0] if buffers else None,
                     "parameters_differing": len(params)}
            if buffers:
                found.update(buffer=buffers[0], buffers_differing=len(buffers))
            return found
    return None


def nonfinite_steps(run: dict[str, Any]) -> dict[str, Any] | None:
    """The first step of a run whose loss or a tensor was a NaN or an infinity: {step, loss (its
    value, when it was not finite), tensors (their names)}; None when every value was finite."""
    for number, step in enumerate(run["steps"], start=1):
        # a script's step may hold several losses (one per backward), joined by commas
        losses = [loss for loss in (step.get("loss") or "").split(",") if loss in NONFINITE_LOSSES]
        tensors = step.get("nonfinite") or []
        if losses or tensors:
            return {"step": number, "loss": losses[0] if losses else None, "tensors": tensors}
    return None


def sensitivity(run: dict[str, Any]) -> dict[str, Any] | None:
    """The check's control on itself: run A's step 1 against the same step with one element of one
    parameter moved by one ulp (the run's ``ulp_control``), through ``first_divergence``. Returns
    the change, the parameter, and ``detected`` (False would mean an "identical" verdict could not
    have seen such a change); None when the run recorded no control."""
    control = run.get("ulp_control")
    index = int((control or {}).get("index") or 0)  # the step it was taken at (a script's order may move it)
    if not control or len(run["steps"]) <= index:
        return None
    first = run["steps"][index]
    found = first_divergence({"parameters": run["parameters"], "steps": [first]},
                             {"parameters": run["parameters"], "steps": [{**first, "params": control["params"]}]})
    return {"change": "one ulp", "step": 1, "parameter": control["parameter"],
            "detected": found is not None and found["parameter"] == control["parameter"]}


# Ops that draw from a random generator (their base names, as ``aten::NAME.overload``).
RANDOM_OPS = frozenset({"rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like", "normal",
                        "normal_", "uniform_", "bernoulli", "bernoulli_", "multinomial", "exponential_", "geometric_",
                        "cauchy_", "log_normal_", "random_", "poisson", "native_dropout", "dropout", "rrelu",
                        "rrelu_with_noise"})


def is_random_op(op: str | None) -> bool:
    """True for an op that draws from a random generator (``aten::randn.generator``, say)."""
    return bool(op) and op.removeprefix("aten::").split(".")[0] in RANDOM_OPS  # type: ignore[union-attr]


def first_divergent_op(ops_a: list[dict[str, Any]], ops_b: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Where two records of the same step part: the first op whose output differs while its inputs
    matched (``kind`` root-cause), or, when its inputs already differed, the first op that saw a
    difference coming from outside the dispatcher (``kind`` input-differs: a value made in Python
    or NumPy, say), or the first place the op sequences themselves differ. None when they agree."""
    for a, b in zip(ops_a, ops_b, strict=False):
        where = {"index": a["index"], "op": a["op"], "phase": a["phase"], "module": a["module"]}
        if a.get("source"):
            where["source"] = a["source"]  # the user's file and line that ran it (check --script)
        if a["op"] != b["op"]:
            return {**where, "kind": "different-ops", "other_op": b["op"]}
        if a.get("outputs") != b.get("outputs"):
            kind = "root-cause" if a.get("inputs") == b.get("inputs") else "input-differs"
            if kind == "root-cause" and is_random_op(a["op"]):
                where["random"] = True  # same inputs, other output: the generator's state differed
            return {**where, "kind": kind}
    if len(ops_a) != len(ops_b):
        shorter = min(len(ops_a), len(ops_b))
        return {"index": shorter, "op": None, "phase": None, "module": None, "kind": "different-length"}
    return None
