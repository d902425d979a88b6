"""Read a PyTorch profiler (Kineto) Chrome trace into a flat table of timed activities.

GPU traces: every event with ``cat`` ``kernel``, ``gpu_memcpy`` or ``gpu_memset``; durations are
what the trace says (µs, float when the trace has nanosecond resolution; kept exact, never rounded).
CPU-only traces (no GPU activity at all): ``cpu_op`` events with their *self* time, i.e. the
duration minus that of the ops nested inside them on the same thread, so that totals add up to
busy time instead of counting ``aten::conv2d`` and the ``aten::mkldnn_convolution`` inside it twice.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

GPU_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")


class TraceError(ValueError):
    """Raised for a file that is not a readable Chrome trace, or one with nothing to measure."""


@dataclass(frozen=True)
class TraceActivities:
    """Timed activities of one trace. ``events`` has columns name, cat, ts_us, dur_us (self time on CPU)."""

    kind: str  # "gpu" or "cpu"
    events: pd.DataFrame
    device_name: str | None
    source: str


def read_trace_json(path: str | Path) -> dict[str, Any]:
    """Parse a ``.json`` or ``.json.gz`` Chrome trace; raises TraceError when it is not one."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise TraceError(f"cannot read trace {str(file)!r}: {error.strerror or error}") from None
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        document = json.loads(raw)
    except (OSError, ValueError, EOFError) as error:
        raise TraceError(f"{str(file)!r} is not a JSON Chrome trace (.json or .json.gz): {error}") from None
    if isinstance(document, list):
        document = {"traceEvents": document}
    if not isinstance(document, dict) or not isinstance(document.get("traceEvents"), list):
        raise TraceError(f"{str(file)!r} has no traceEvents list; expected a PyTorch profiler Chrome trace")
    return document


def _self_times(cpu_ops: pd.DataFrame) -> np.ndarray:
    """Self time (µs) of each CPU op: its duration minus its direct children's, per thread."""
    self_us = cpu_ops["dur_us"].to_numpy(dtype=float).copy()
    order = cpu_ops.sort_values(["pid", "tid", "ts_us", "dur_us"], ascending=[True, True, True, False]).index
    position = {label: i for i, label in enumerate(cpu_ops.index)}
    stack: list[tuple[int, float, tuple[Any, Any]]] = []  # (row, end time, thread)
    ts = cpu_ops["ts_us"].to_numpy(dtype=float)
    dur = cpu_ops["dur_us"].to_numpy(dtype=float)
    pids = cpu_ops["pid"].to_numpy()
    tids = cpu_ops["tid"].to_numpy()
    for label in order:
        row = position[label]
        thread = (pids[row], tids[row])
        start, end = ts[row], ts[row] + dur[row]
        while stack and (stack[-1][2] != thread or stack[-1][1] <= start):
            stack.pop()
        if stack:
            self_us[stack[-1][0]] -= dur[row]
        stack.append((row, end, thread))
    return np.maximum(self_us, 0.0)


def activities_from_document(document: dict[str, Any], source: str = "<trace>") -> TraceActivities:
    """Extract timed activities from a parsed trace document (see module docstring)."""
    rows = [e for e in document["traceEvents"] if isinstance(e, dict) and e.get("ph") == "X"
            and e.get("cat") in (*GPU_CATEGORIES, "cpu_op")]
    frame = pd.DataFrame.from_records(rows, columns=["name", "cat", "ts", "dur", "pid", "tid"])
    frame = frame.rename(columns={"ts": "ts_us", "dur": "dur_us"})
    frame["dur_us"] = pd.to_numeric(frame["dur_us"], errors="coerce").fillna(0.0).astype(float)
    frame["ts_us"] = pd.to_numeric(frame["ts_us"], errors="coerce").fillna(0.0).astype(float)
    gpu = frame[frame["cat"].isin(GPU_CATEGORIES)]
    properties = document.get("deviceProperties") or []
    device_name = properties[0].get("name") if properties and isinstance(properties[0], dict) else None
    if len(gpu):
        return TraceActivities("gpu", gpu[["name", "cat", "ts_us", "dur_us"]].reset_index(drop=True),
                               device_name, source)
    cpu = frame[frame["cat"] == "cpu_op"].reset_index(drop=True)
    if len(cpu) == 0:
        raise TraceError(f"{source}: no GPU kernels, memory copies or CPU ops in this trace; "
                         "nothing to break down (was the profiler started with any activity?)")
    cpu = cpu.assign(dur_us=_self_times(cpu))
    return TraceActivities("cpu", cpu[["name", "cat", "ts_us", "dur_us"]], None, source)


def load_trace(path: str | Path) -> TraceActivities:
    """Read a Chrome trace file and return its timed activities (GPU kernels, else CPU op self times)."""
    return activities_from_document(read_trace_json(path), source=str(path))
