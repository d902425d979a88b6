"""Checks of the rows of a store that this detprof did not write (``db merge``'s other store).

SQLite keeps whatever value a row was given, whatever its column's declared type: a crafted or
damaged store can hold text in a time column or ``{not json`` in a document column. Every row is
checked against what detprof writes before anything is merged, so that a bad store is refused as
a whole, in one line, and never lands where ``runs``, ``report`` and ``db export`` would trip on it.
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

from detprof.store.errors import StoreError


class DamagedStoreError(StoreError):
    """Another store holds a row that detprof would not have written."""


# What a column may hold. text / int / number: that SQLite type ("?" after it: or NULL); object,
# list, json: text that parses as a JSON object, a JSON list, any JSON value.
RULES: dict[str, dict[str, str]] = {
    "runs": {"created_at": "text", "kind": "text", "arch": "text", "framework": "text", "device_kind": "text",
             "device_name": "text", "modes": "text", "command": "text", "config_json": "object",
             "environment_json": "object", "summary_json": "object", "uid": "text"},
    "jobs": {"job_index": "int", "side": "int", "mode": "text", "repeat": "int", "status": "text", "error": "text?",
             "peak_mem_bytes": "int?", "peak_mem_kind": "text?", "toggles_json": "object",
             "applied_toggles_json": "object", "nondeterministic_ops_json": "list", "gpu_monitor_json": "json?",
             "trace_path": "text?", "wall_s": "number?", "peak_mem_warmup_bytes": "int?", "state_sha256": "text?"},
    "steps": {"job_index": "int", "step": "int", "time_ms": "number"},
    "kernels": {"mode": "text", "name": "text", "category": "text", "nondeterministic": "int?", "calls": "int",
                "total_us": "number", "mean_us": "number", "median_us": "number", "min_us": "number",
                "max_us": "number", "std_us": "number?"},
    "stability_runs": {"experiment": "text", "task": "text", "variant": "text", "mode": "text", "fixed_json": "list",
                       "recipe_json": "object", "run_index": "int", "seeds_json": "object", "accuracy": "number",
                       "created_at": "text", "predictions_path": "text", "weights_path": "text",
                       "environment_json": "object"},
    "sweep_jobs": {"job_key": "text", "sweep": "text", "label": "text", "config_json": "object", "status": "text",
                   "run_id": "int?", "error": "text?", "attempts": "int", "updated_at": "text"},
}
# Measured quantities: finite and never negative (a negative time or count is no measurement).
NON_NEGATIVE = {"time_ms", "calls", "total_us", "mean_us", "median_us", "min_us", "max_us", "std_us", "wall_s",
                "peak_mem_bytes", "peak_mem_warmup_bytes", "run_index", "attempts", "accuracy"}
JSON_KINDS = {"object": dict, "list": list, "json": object}


def problem(column: str, rule: str, value: Any) -> str | None:
    """Why ``value`` does not fit ``rule`` (see RULES), or None when it does."""
    kind, optional = rule.rstrip("?"), rule.endswith("?")
    if value is None:
        return None if optional else "is empty (NULL)"
    if kind == "text":
        if not isinstance(value, str):
            return f"is {value!r}, not text"
        return "is empty" if value == "" and not optional else None
    if kind in ("int", "number"):
        numeric = isinstance(value, int) if kind == "int" else isinstance(value, (int, float))
        if not numeric:
            return f"is {value!r}, not {'a whole number' if kind == 'int' else 'a number'}"
        if kind == "number" and not math.isfinite(value):
            return f"is {value!r}, not a finite number"
        if column in NON_NEGATIVE and value < 0:
            return f"is {value!r}, a negative {column}"
        return None
    if not isinstance(value, str):
        return f"is {value!r}, not JSON text"
    try:
        parsed = json.loads(value)
    except ValueError:
        return f"is not JSON: {value[:40]!r}"
    expected = JSON_KINDS[kind]
    return None if isinstance(parsed, expected) else f"is a JSON {type(parsed).__name__}, not a JSON {kind}"


NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))
# What a verdict run's summary must hold for runs, db export and the report to read it: each key's
# type, and for a list, what each item must be (a dict with those keys' types).
VERDICT_SHAPES: dict[str, dict[str, Any]] = {
    "check": {"bitwise_identical": bool, "max_abs_diff": OPTIONAL_NUMBER, "runs": [{"device": str}],
              "first_divergence": (dict, type(None))},
    "batch-invariance": {"rows": [{"batch_size": int, "fraction_equal": NUMBER}]},
    "audit": {"nondeterministic_ops": [{"op": str, "sites": list}]},
    "advise": {"candidates": [{"mode": str, "bitwise_identical": bool}], "recommendation": (dict, type(None))},
}
COMMON_SHAPE: dict[str, Any] = {"arch": str, "device": dict, "modes": [{"mode": str}]}
DIVERGENCE_SHAPE: dict[str, Any] = {"step": int, "parameter": (str, type(None))}


def _shape_problem(document: dict[str, Any], shape: dict[str, Any], where: str) -> str | None:
    for key, expected in shape.items():
        value = document.get(key)
        if isinstance(expected, list):  # a list whose every item is a dict of expected[0]'s shape
            if not isinstance(value, list):
                return f"{where}{key} is {json.dumps(value)[:40]}, not a list"
            for index, item in enumerate(value):
                if not isinstance(item, dict):
                    return f"{where}{key}[{index}] is {json.dumps(item)[:40]}, not an object"
                found = _shape_problem(item, expected[0], f"{where}{key}[{index}].")
                if found:
                    return found
        else:
            types = expected if isinstance(expected, tuple) else (expected,)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):  # True is an int
                return f"{where}{key} is {json.dumps(value)[:40]}"
    return None


def verdict_problem(kind: str, summary: dict[str, Any]) -> str | None:
    """Why a verdict run's summary (``kind``: check, audit, advise, batch-invariance) does not have
    the shape detprof writes, or None when it does (other kinds: None)."""
    if kind not in VERDICT_SHAPES:
        return None
    found = _shape_problem(summary, {**COMMON_SHAPE, **VERDICT_SHAPES[kind]}, "")
    divergence = summary.get("first_divergence")
    if found is None and kind == "check" and isinstance(divergence, dict):
        found = _shape_problem(divergence, DIVERGENCE_SHAPE, "first_divergence.")
    return found


def check_rows(connection: sqlite3.Connection, shown: str) -> None:
    """Raise DamagedStoreError naming the first row of the store that breaks RULES (table, row,
    column, value); tables the store lacks are skipped."""
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for table, rules in RULES.items():
        if table not in tables:
            continue
        columns = list(rules)
        key = "id" if table in ("runs", "stability_runs") else "rowid"
        for row in connection.execute(f"SELECT {key}, {', '.join(columns)} FROM {table}"):
            for column, value in zip(columns, row[1:], strict=True):
                reason = problem(column, rules[column], value)
                if reason is not None:
                    where = f"run {row[0]}" if table == "runs" else f"{table} row {row[0]}"
                    raise DamagedStoreError(f"db merge: {shown!r} is not merged, as it holds a row detprof would "
                                            f"not write: {where}, {column} {reason}; nothing was changed here")
    if "runs" in tables:
        for run_id, kind, summary in connection.execute("SELECT id, kind, summary_json FROM runs"):
            reason = verdict_problem(kind, json.loads(summary))
            if reason is not None:
                raise DamagedStoreError(f"db merge: {shown!r} is not merged, as its run {run_id} holds a {kind} "
                                        f"verdict of another shape ({reason}); nothing was changed here")
