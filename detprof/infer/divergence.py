"""Where two recordings of one token part (numpy only): the first module whose output row for that
token differs, compared bit for bit, innermost first. The recordings come from
detprof.backends.torch.inference.locate's probe, in one process (two settings decoded there) or in
two (the run-to-run row: each process saves its recording with ``save_records``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RECORDS_FILE = "records.npz"  # beside a recording process's result


@dataclass
class ModuleRow:
    """One module call in the recorded forward: its name and class, the token's input and output rows
    as float32 (None when no tensor of the module had the batch's shape), and the ops it ran itself."""

    name: str
    kind: str
    input: np.ndarray | None = None
    output: np.ndarray | None = None
    ops: list[str] = field(default_factory=list)


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Bitwise equal (a NaN equals only the same NaN; -0.0 differs from 0.0)."""
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool((a.view(np.uint32) == b.view(np.uint32)).all())


def first_divergent_module(baseline: list[ModuleRow], other: list[ModuleRow]) -> dict[str, Any] | None:
    """The first module call to finish (in the baseline's order, matched by name and occurrence) whose
    output row differs, so the innermost first: ``root-cause`` when its input row matched,
    ``input-differs`` when it did not; with its ops and the largest |difference| of its output.
    None when every output matched."""
    seen: dict[str, int] = {}
    others: dict[tuple[str, int], ModuleRow] = {}
    for record in other:
        others[(record.name, seen.get(record.name, 0))] = record
        seen[record.name] = seen.get(record.name, 0) + 1
    seen.clear()
    for record in baseline:
        key = (record.name, seen.get(record.name, 0))
        seen[record.name] = key[1] + 1
        match = others.get(key)
        if match is None or record.output is None or _same(record.output, match.output):
            continue
        difference = np.abs(record.output.astype(np.float64) - match.output.astype(np.float64)).max() \
            if match.output is not None and match.output.shape == record.output.shape else None
        found: dict[str, Any] = {"module": record.name, "module_type": record.kind, "ops": record.ops,
                                 "kind": "root-cause" if _same(record.input, match.input) else "input-differs",
                                 "max_abs_diff": float(difference) if difference is not None else None}
        if found["kind"] == "input-differs":  # made between modules: by the ops of the module holding it
            holder = _holder(baseline, record.name)
            if holder is not None:
                found["arose_in"] = {"module": holder.name, "module_type": holder.kind, "ops": holder.ops}
        return found
    return None


def _holder(records: list[ModuleRow], name: str) -> ModuleRow | None:
    """The innermost module holding module ``name`` (the model itself for a top-level one)."""
    holders = [r for r in records if r.name != name and (r.name == "(model)" or name.startswith(r.name + "."))]
    return max(holders, key=lambda r: -1 if r.name == "(model)" else len(r.name), default=None)


def save_records(records: list[ModuleRow], path: Path) -> list[dict[str, Any]]:
    """Write the records' rows to ``path`` (.npz, exact float32) and return what goes in the result:
    each call's name, class and ops, and which rows it has."""
    arrays = {f"{side}{index}": row for index, record in enumerate(records)
              for side, row in (("input", record.input), ("output", record.output)) if row is not None}
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return [{"name": r.name, "kind": r.kind, "ops": r.ops, "input": r.input is not None,
             "output": r.output is not None} for r in records]


def load_records(described: list[dict[str, Any]], path: Path) -> list[ModuleRow]:
    """The records ``save_records`` wrote."""
    with np.load(path) as arrays:
        return [ModuleRow(d["name"], d["kind"], arrays[f"input{i}"] if d["input"] else None,
                          arrays[f"output{i}"] if d["output"] else None, list(d["ops"]))
                for i, d in enumerate(described)]
