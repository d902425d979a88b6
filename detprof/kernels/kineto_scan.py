"""A fast path for traces written by Kineto (PyTorch's profiler): read the GPU events without
parsing the whole document.

Kineto writes the fields we need first and in a fixed order on every event. The scan uses that
layout only where it can prove it accounted for everything: every GPU ``cat`` in the file must
match the strict event pattern, and so must every event that can carry a launch correlation
(``cuda_runtime``, ``cuda_driver``, ``cuda_sync``) and every ``ProfilerStep#N`` annotation (for
the ``steps`` scope); and every ``"correlation"`` in the file must belong to an event it read, so
that no other event could link to a kernel. Otherwise it returns None and the caller parses the
document. Tests check that both paths give identical events on real traces.
"""

from __future__ import annotations

import math
import re

from detprof.kernels.activities import TraceActivities, launched_in_steps, loads_json

_NUMBER = rb"(-?[0-9][0-9.eE+-]*)"
_SKIP_NUMBER = rb"-?[0-9][0-9.eE+-]*"
# A JSON string as an unrolled loop: one regex step per run of plain characters, not per
# character, which matters for 5,000-character kernel names.
_STRING = rb'"([^"\\]*(?:\\.[^"\\]*)*)"'
_SKIP_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'
# Between fields Kineto writes ", " (torch <= 2.12) or ",\n    " (torch 2.13, one field per line).
_NEXT = rb",\s*"
_HEAD = rb'"pid": [^,]*' + _NEXT + rb'"tid": [^,]*' + _NEXT + rb'"ts": ' + _NUMBER + _NEXT + rb'"dur": '
# The correlation inside args: args of Kineto's GPU and launch events hold no nested object, so a
# brace-free stretch stays inside the event (a brace in a string value ends it: no match, and the
# correlation count below sends the file to the full parse). JSON escapes every quote inside a
# string, so '"correlation": ' can only be the key. torch 2.13 puts the comma before "args" on a
# line of its own. (Walking args key by key took twice as long on the 109k-event trace.)
_ARGS_CORRELATION = rb'\s*,\s*"args": \{[^{}]*"correlation": ([0-9]+)'
# A complete ("X") event's category, in either layout. Each lookbehind has a fixed width, as
# Python requires; the alternatives cover the two layouts Kineto writes.
_KINETO_COMPLETE = rb'(?:(?<="ph": "X", "cat")|(?<="ph": "X",\n    "cat"))'

# One pass over every "cat" in the file (a literal the regex engine finds fast). Per match, the
# groups (numbered as match.group numbers them) are:
#   1-2  a CPU-side event with a correlation (cuda_runtime / cuda_driver / cuda_sync) in
#        Kineto's layout: ts, correlation
#   3-7  a GPU activity in Kineto's layout: cat, name, ts, dur, correlation
#   8    a GPU or launch category in any other layout: the scan cannot vouch for the file.
_EVENTS = re.compile(
    rb'"cat"(?:' + _KINETO_COMPLETE + rb': "(?:'
    + rb'cuda_(?:runtime|driver|sync)"' + _NEXT + rb'"name": ' + _SKIP_STRING + _NEXT + _HEAD + _SKIP_NUMBER
    + _ARGS_CORRELATION
    + rb'|(kernel|gpu_memcpy|gpu_memset)"' + _NEXT + rb'"name": ' + _STRING + _NEXT + _HEAD + _NUMBER
    + _ARGS_CORRELATION
    + rb')|\s*:\s*"(kernel|gpu_memcpy|gpu_memset|cuda_runtime|cuda_driver|cuda_sync)")'
)
_CORRELATION_KEY = b'"correlation"'
_UNKNOWN_LAYOUT = 8
_STEP_EVENT = re.compile(rb'"name": "ProfilerStep#[0-9]+"' + _NEXT + _HEAD + _NUMBER)
_STEP_NAME = b'"ProfilerStep#'
_DEVICE_NAME = re.compile(rb'"deviceProperties"\s*:\s*\[\s*\{[^{}]*?"name"\s*:\s*' + _STRING)


def _text(raw: bytes) -> str:
    return str(loads_json(b'"' + raw + b'"')) if b"\\" in raw else raw.decode()


def _step_end(raw: bytes) -> float | None:
    """End (µs) of the last ProfilerStep#N; +inf when the trace has no step annotations; None when
    any occurrence is not a complete step event in Kineto's layout.

    Without steps the rule's limit is the end of the last CPU event, and every launch event, being
    a CPU event itself, starts before that: all launches count, which +inf expresses."""
    end = -math.inf
    position = raw.find(_STEP_NAME)
    if position < 0:
        return math.inf
    while position >= 0:
        match = _STEP_EVENT.match(raw, position - len(b'"name": '))
        if match is None:
            return None
        end = max(end, float(match.group(1)) + float(match.group(2)))
        position = raw.find(_STEP_NAME, position + 1)
    return end


def scan_gpu_activities(raw: bytes, source: str, scope: str) -> TraceActivities | None:
    """GPU activities of a Kineto trace read from its text, or None when the scan cannot vouch for them."""
    if b'"traceEvents"' not in raw:
        return None
    step_end = _step_end(raw) if scope == "steps" else None
    if scope == "steps" and step_end is None:
        return None  # step annotations in a layout the scan does not know
    # One match at a time, keeping only what the result needs: findall's tuples of every group of
    # every event came to about twice the trace's own size on large traces.
    rows = 0
    launches: list[tuple[bytes, float]] = []
    gpu: list[tuple[bytes, bytes, bytes, bytes, bytes]] = []
    for match in _EVENTS.finditer(raw):
        rows += 1
        if match.group(_UNKNOWN_LAYOUT):
            return None  # a layout we do not know
        if match.group(3):
            cat, name, ts, dur, correlation = match.group(3, 4, 5, 6, 7)
            gpu.append((cat, name, ts, dur, correlation))
        elif match.group(2):
            launches.append((match.group(2), float(match.group(1))))
    if raw.count(_CORRELATION_KEY) != rows or not gpu:
        return None  # a correlation on some other event, or nothing for the scan to read
    if scope == "steps":
        # Correlations stay as their digits: JSON integers have one spelling, so equal text is equal value.
        if not launches:
            return None  # GPU work without launch events: the full parse applies the rule to every CPU event
        keep = launched_in_steps([g[4] for g in gpu], launches, step_end)
        if keep is not None:
            gpu = [g for g, kept in zip(gpu, keep, strict=True) if kept]
    names: dict[bytes, str] = {}
    try:
        columns = ([names.get(g[1]) or names.setdefault(g[1], _text(g[1])) for g in gpu],
                   [g[0].decode() for g in gpu], [float(g[2]) for g in gpu], [float(g[3]) for g in gpu])
    except ValueError:
        return None
    if any(not (math.isfinite(d) and d >= 0) for d in columns[3]) or not all(map(math.isfinite, columns[2])):
        return None  # a negative or non-finite duration: the full parse names the event
    device = _DEVICE_NAME.search(raw)
    return TraceActivities("gpu", *columns, _text(device.group(1)) if device else None, source, parser="kineto-scan")
