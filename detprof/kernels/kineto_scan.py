"""A fast path for traces written by Kineto (PyTorch's profiler): read the GPU events without
parsing the whole document.

Kineto writes the fields we need first and in a fixed order on every event. The scan uses that
layout only where it can prove it accounted for everything: every GPU ``cat`` in the file must
match the strict event pattern, and so must every launch event and ``ProfilerStep#N``
annotation (for the ``steps`` scope). Otherwise it returns None and the caller parses the
document. Tests check that both paths give identical events on real traces.
"""

from __future__ import annotations

import re

import pandas as pd

from detprof.kernels.trace import TraceActivities, launched_in_steps, loads_json

_NUMBER = rb"(-?[0-9][0-9.eE+-]*)"
# A JSON string as an unrolled loop: one regex step per run of plain characters, not per
# character, which matters for 5,000-character kernel names.
_STRING = rb'"([^"\\]*(?:\\.[^"\\]*)*)"'
_HEAD = rb'"pid": [^,]*, "tid": [^,]*,\s*"ts": ' + _NUMBER + rb', "dur": ' + _NUMBER
# args hold no nested objects in Kineto's GPU and launch events, so [^{}]* stays inside them.
_ARGS_CORRELATION = rb',\s*"args": \{[^{}]*"correlation": ([0-9]+)'
_GPU = (b"kernel", b"gpu_memcpy", b"gpu_memset")

# Stage 1 finds every GPU or launch category in the file, whatever the spacing (one fast pass on
# the literal "cat"). Stage 2 matches Kineto's strict layout anchored at each of them; a single
# miss means a layout we do not understand, and the caller parses the whole document instead.
_CATEGORY = re.compile(rb'"cat"\s*:\s*"(kernel|gpu_memcpy|gpu_memset|cuda_runtime|cuda_driver)"')
_PH_X = b'"ph": "X", '
_EVENT = re.compile(_PH_X + rb'"cat": "(kernel|gpu_memcpy|gpu_memset|cuda_runtime|cuda_driver)", "name": '
                    + _STRING + rb", " + _HEAD + _ARGS_CORRELATION)
_STEP_EVENT = re.compile(rb'"name": "ProfilerStep#[0-9]+", ' + _HEAD)
_STEP_NAME = b'"ProfilerStep#'
_DEVICE_NAME = re.compile(rb'"deviceProperties"\s*:\s*\[\s*\{[^{}]*?"name"\s*:\s*' + _STRING)


def _text(raw: bytes) -> str:
    return str(loads_json(b'"' + raw + b'"')) if b"\\" in raw else raw.decode()


def _step_end(raw: bytes) -> float | None:
    """End (µs) of the last ProfilerStep#N, or None if any occurrence is not a complete step event."""
    end = None
    position = raw.find(_STEP_NAME)
    while position >= 0:
        match = _STEP_EVENT.match(raw, position - len(b'"name": '))
        if match is None:
            return None
        finish = float(match.group(1)) + float(match.group(2))
        end = finish if end is None else max(end, finish)
        position = raw.find(_STEP_NAME, position + 1)
    return end


def scan_gpu_activities(raw: bytes, source: str, scope: str) -> TraceActivities | None:
    """GPU activities of a Kineto trace read from its text, or None when the scan cannot vouch for them."""
    if b'"traceEvents"' not in raw:
        return None
    gpu: list[tuple[bytes, ...]] = []
    launches: list[tuple[int, float]] = []
    match_event = _EVENT.match
    back = len(_PH_X)
    for hit in _CATEGORY.finditer(raw):
        match = match_event(raw, hit.start() - back)
        if match is None:
            return None
        cat, name, ts, dur, correlation = match.groups()
        if cat in _GPU:
            gpu.append((cat, name, ts, dur, correlation))
        else:
            launches.append((int(correlation), float(ts)))
    if not gpu:
        return None
    if scope == "steps":
        step_end = _step_end(raw)
        if not launches or step_end is None:
            return None  # no launches or no step annotations: the rule needs every CPU event
        keep = launched_in_steps([int(g[4]) for g in gpu], launches, step_end)
        if keep is not None:
            gpu = [g for g, kept in zip(gpu, keep, strict=True) if kept]
    try:
        frame = pd.DataFrame({
            "name": [_text(g[1]) for g in gpu],
            "cat": [g[0].decode() for g in gpu],
            "ts_us": [float(g[2]) for g in gpu],
            "dur_us": [float(g[3]) for g in gpu],
        })
    except ValueError:
        return None
    device = _DEVICE_NAME.search(raw)
    return TraceActivities("gpu", frame, _text(device.group(1)) if device else None, source)
