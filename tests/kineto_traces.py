"""Small Kineto (PyTorch profiler) traces written in the layouts real profilers write, for tests.

Two layouts, as measured on real files:
- ``compact``: torch up to 2.12 (and the A100/V100 traces in tests/data/traces): ``"ph": "X",
  "cat": ..., "name": ..., "pid": ..., "tid": ...`` on one line, then ``"ts": ..., "dur": ...,`` and
  an ``args`` block with one or a few keys per line.
- ``expanded``: torch 2.13, one field per line, the comma before ``"args"`` on a line of its own,
  and the args keys on one line (``"External id": 513,"Record function id": 0, ...``).

Each kernel is launched by a ``cudaLaunchKernel`` runtime event carrying the same correlation id,
inside a ``ProfilerStep#1`` annotation, exactly as Kineto links them.
"""

from __future__ import annotations

import json
from pathlib import Path

LAYOUTS = ("compact", "expanded")
CPU_PID = 4242


def _compact(ph_cat_name: str, pid: object, tid: object, ts: float, dur: float, args: list[str]) -> str:
    body = ",\n      ".join(args)
    return (f'  {{\n    "ph": "X", {ph_cat_name}, "pid": {json.dumps(pid)}, "tid": {json.dumps(tid)},\n'
            f'    "ts": {ts}, "dur": {dur},\n    "args": {{\n      {body}\n    }}\n  }}')


def _expanded(ph_cat_name: str, pid: object, tid: object, ts: float, dur: float, args: list[str]) -> str:
    cat_name = ph_cat_name.replace(", ", ",\n    ", 1)
    return (f'  {{\n    "ph": "X",\n    {cat_name},\n    "pid": {json.dumps(pid)},\n    "tid": {json.dumps(tid)},\n'
            f'    "ts": {ts:.3f},\n    "dur": {dur:.3f}\n    ,\n    "args": {{\n      {",".join(args)}\n    }}\n  }}')


def kineto_trace_text(kernels: list[tuple[str, float]], layout: str = "compact", device: str | None = None,
                      cpu_ops: list[tuple[str, float]] | None = None, launches: bool = True,
                      kernel_events: bool = True) -> str:
    """A Kineto trace: ``kernels`` as (name, duration µs) run one after another on stream 7, each
    launched inside ProfilerStep#1; ``cpu_ops`` as (name, µs) on the CPU thread; ``device`` the
    name in deviceProperties (None: no GPU listed). ``launches=False`` leaves out the runtime
    events; ``kernel_events=False`` the GPU side (what a profile without CUPTI activity holds)."""
    write = _compact if layout == "compact" else _expanded
    events = []
    total = sum(d for _, d in kernels) + sum(d for _, d in (cpu_ops or [])) + 100.0
    events.append(write('"cat": "user_annotation", "name": "ProfilerStep#1"', CPU_PID, CPU_PID, 1000.0, total,
                        ['"External id": 1', '"Record function id": 0', '"Ev Idx": 0']))
    ts = 1010.0
    for i, (name, dur) in enumerate(cpu_ops or []):
        events.append(write(f'"cat": "cpu_op", "name": {json.dumps(name)}', CPU_PID, CPU_PID, ts, dur,
                            [f'"External id": {100 + i}', '"Sequence number": 1']))
        ts += dur + 1.0
    for i, (name, dur) in enumerate(kernels):
        correlation = 500 + i
        if launches:
            events.append(write('"cat": "cuda_runtime", "name": "cudaLaunchKernel"', CPU_PID, CPU_PID, ts, 4.0,
                                [f'"External id": {correlation}', '"cbid": 211', f'"correlation": {correlation}']))
        if not kernel_events:
            ts += dur + 6.0
            continue
        events.append(write(f'"cat": "kernel", "name": {json.dumps(name)}', 0, 7, ts + 5.0, dur,
                            [f'"External id": {correlation}', '"queued": 0', '"device": 0', '"context": 1',
                             '"stream": 7', f'"correlation": {correlation}', '"registers per thread": 32',
                             '"grid": [1, 1, 1]', '"block": [128, 1, 1]']))
        ts += dur + 6.0
    properties = ("[]" if device is None else
                  f'[\n    {{\n      "id": 0, "name": {json.dumps(device)}, "totalGlobalMem": 85899345920,\n'
                  f'      "computeMajor": 9, "computeMinor": 0, "numSms": 132\n    }}\n  ]')
    return ('{\n  "schemaVersion": 1,\n  "deviceProperties": ' + properties + ',\n  "traceEvents": [\n'
            + ",\n".join(events) + '\n  ],\n  "traceName": "test"\n}\n')


def write_kineto_trace(path: Path, kernels: list[tuple[str, float]], layout: str = "compact",
                       device: str | None = "NVIDIA H100 80GB HBM3", **options: object) -> Path:
    """Write ``kineto_trace_text(...)`` to ``path`` and return it."""
    text = kineto_trace_text(kernels, layout, device, **options)  # type: ignore[arg-type]
    json.loads(text)  # the file must be valid JSON, as the profiler's are
    path.write_text(text)
    return path
