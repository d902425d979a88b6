"""Read a PyTorch profiler (Kineto) Chrome trace into a flat table of timed activities.

GPU traces: events with ``cat`` ``kernel``, ``gpu_memcpy`` or ``gpu_memset``; durations are what
the trace says (µs; floats when it has nanosecond resolution, kept exact, never rounded).
Which GPU events count is the *scope*:

- ``steps`` (default): GPU work launched within the traced iterations, i.e. whose launching CPU
  event (matched on ``args.correlation``) starts no later than the end of the last
  ``ProfilerStep#N``; without step annotations, the end of the last CPU event; with no CPU events
  at all, everything. This is the rule of Holistic Trace Analysis with
  ``include_last_profiler_step=True``, so the per-kernel totals agree with it.
- ``all``: every GPU event in the file.

CPU-only traces (no GPU activity at all): ``cpu_op`` events with their *self* time, i.e. the
duration minus that of the ops nested inside them on the same thread, so that totals add up to
busy time instead of counting ``aten::conv2d`` and the ``aten::mkldnn_convolution`` inside it twice.
A trace of a GPU program without kernel events (the profiler recorded no CUDA activity) is an
error unless the CPU ops are asked for: its CPU op times are not GPU time.
"""

from __future__ import annotations

import gc
import math
import re
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from detprof.kernels.activities import (
    TraceActivities,
    TraceError,
    launched_in_steps,
    loads_json,
)
from detprof.kernels.kineto_scan import scan_gpu_activities
from detprof.kernels.xplane import load_xplane

GPU_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")
SCOPES = ("steps", "all")
PROFILER_STEP = re.compile(r"^ProfilerStep#\d+$")


class KernelLessGpuTraceError(TraceError):
    """A trace of a GPU program that holds no GPU kernel, memcpy or memset events."""


GPU_HOST_CATEGORIES = ("cuda_runtime", "cuda_driver", "cuda_sync")


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector. Parsing a trace allocates ~100k dicts and no cycles;
    left on, the collector rescans them over and over and more than doubles the load time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _zlib_module() -> Any:
    """python-isal's zlib when installed (inflates about twice as fast), else the standard library's."""
    try:
        from isal import isal_zlib

        return isal_zlib
    except ImportError:
        return zlib


_inflate = _zlib_module()
_GZIP_WINDOW = 31  # wbits for a gzip wrapper around deflate
_INFLATE_ERRORS: tuple[type[BaseException], ...] = tuple({zlib.error, _inflate.error})


DEFAULT_MAX_TRACE_MB = 2048  # 10x the largest real traces seen (~200 MB); --max-trace-mb raises it
_READ_CHUNK = 1 << 24


class TraceTooLargeError(TraceError):
    """A trace (or what its gzip expands to) larger than the cap it was read under."""


def _too_large(source: str, limit_bytes: int, what: str) -> TraceTooLargeError:
    return TraceTooLargeError(f"{source!r} {what} more than {limit_bytes / 2**20:,.0f} MB, the cap on a trace's JSON "
                              "text; raise it with --max-trace-mb MB if the file is a real trace")


def gunzip(data: bytes, limit_bytes: int | None = None, source: str = "<trace>") -> bytes:
    """Decompress gzip data, every member of it (as ``gzip.decompress`` does), producing at most
    ``limit_bytes`` (None: no cap), so that a small file that expands to gigabytes stops early.

    Raises EOFError when the last member is cut short, zlib.error (or isal's error) when the data
    is not gzip, and TraceTooLargeError past the cap."""
    parts = []
    produced = 0
    while data:
        member = _inflate.decompressobj(_GZIP_WINDOW)
        while True:
            room = 0 if limit_bytes is None else limit_bytes - produced + 1  # 0: no limit
            part = member.decompress(data, room)
            produced += len(part)
            parts.append(part)
            if limit_bytes is not None and produced > limit_bytes:
                raise _too_large(source, limit_bytes, "expands to")
            if member.eof:
                break
            data = member.unconsumed_tail
            if not data:  # every byte read and no end-of-stream marker
                raise EOFError("compressed data ended before the end-of-stream marker")
        data = member.unused_data.lstrip(b"\0")  # gzip allows zero padding between members
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _read_capped(file: Path, limit_bytes: int) -> bytes:
    """The file's bytes; raises TraceTooLargeError when there are more than ``limit_bytes``. A
    regular file is measured first and read in one piece (no second copy); a pipe or a device
    such as /dev/zero has no size to check, and is read in chunks up to the cap."""
    status = file.stat()
    if stat.S_ISREG(status.st_mode):
        if status.st_size > limit_bytes:
            raise _too_large(str(file), limit_bytes, "holds")
        return file.read_bytes()
    parts = []
    read = 0
    with file.open("rb") as stream:
        while read <= limit_bytes:
            part = stream.read(min(_READ_CHUNK, limit_bytes + 1 - read))
            if not part:
                break
            parts.append(part)
            read += len(part)
    if read > limit_bytes:
        raise _too_large(str(file), limit_bytes, "holds")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_trace_bytes(path: str | Path, max_trace_mb: float = DEFAULT_MAX_TRACE_MB) -> bytes:
    """The trace's JSON text, gunzipped when the file is gzip; neither the file nor its JSON text
    may exceed ``max_trace_mb`` MB (2^20 bytes). Raises TraceError when unreadable and
    TraceTooLargeError past the cap."""
    file = Path(path)
    if not (math.isfinite(max_trace_mb) and max_trace_mb > 0):
        raise TraceError(f"--max-trace-mb {max_trace_mb} is not accepted; use a number of MB > 0")
    limit = int(max_trace_mb * 2**20)
    try:
        raw = _read_capped(file, limit)
        return gunzip(raw, limit, str(file)) if raw[:2] == b"\x1f\x8b" else raw
    except OSError as error:
        raise TraceError(f"cannot read trace {str(file)!r}: {error.strerror or error}") from None
    except EOFError as error:
        raise TraceError(f"{str(file)!r} is a truncated gzip file: {error}") from None
    except _INFLATE_ERRORS as error:
        raise TraceError(f"{str(file)!r} starts like gzip but is not valid gzip data: {error}") from None
    except MemoryError:
        raise TraceError(f"{str(file)!r} does not fit in this machine's memory; lower --max-trace-mb to be told "
                         "before reading so much") from None


def parse_trace_document(raw: bytes, source: str) -> dict[str, Any]:
    """Parse trace JSON text into a document with a ``traceEvents`` list; raises TraceError."""
    try:
        document = loads_json(raw)
    except ValueError as error:
        raise TraceError(f"{source!r} is not a JSON Chrome trace (.json or .json.gz): {error}") from None
    if isinstance(document, list):
        document = {"traceEvents": document}
    if not isinstance(document, dict) or not isinstance(document.get("traceEvents"), list):
        raise TraceError(f"{source!r} has no traceEvents list; expected a PyTorch profiler Chrome trace")
    return document


def read_trace_json(path: str | Path, max_trace_mb: float = DEFAULT_MAX_TRACE_MB) -> dict[str, Any]:
    """Parse a ``.json`` or ``.json.gz`` Chrome trace; raises TraceError when it is not one."""
    return parse_trace_document(read_trace_bytes(path, max_trace_mb), str(path))


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _checked(events: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """The events, once each is shown to have a string ``name`` and a finite ``ts`` and ``dur``
    (µs, ``dur`` >= 0); raises TraceError naming the first event that does not. A duration that is
    missing, text, a boolean or negative would otherwise be counted as some number of µs."""
    for index, event in enumerate(events):
        name = event.get("name")
        where = f"{source}: the {event.get('cat')!r} event at ts {event.get('ts')!r}"
        if not isinstance(name, str):
            raise TraceError(f"{where} has name {name!r}; an event's name must be a string")
        for key in ("ts", "dur"):
            value = event.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                    key == "dur" and value < 0):
                accepted = "a number of µs >= 0" if key == "dur" else "a finite number of µs"
                raise TraceError(f"{source}: event {name[:80]!r} ({event.get('cat')}, #{index + 1} of its kind) has "
                                 f"{key} {value!r}; {key} must be {accepted}")
    return events


def _correlation(event: dict[str, Any]) -> int | None:
    args = event.get("args")
    value = args.get("correlation") if isinstance(args, dict) else None
    return int(value) if isinstance(value, (int, float)) else None


def _columns(events: list[dict[str, Any]]) -> tuple[list[str], list[str], list[float], list[float]]:
    """names, categories, start times and durations (µs) straight from the (checked) event dicts."""
    return ([e["name"] for e in events], [e["cat"] for e in events],
            [float(e["ts"]) for e in events], [float(e["dur"]) for e in events])


def _self_times(operations: list[dict[str, Any]]) -> list[float]:
    """Self time (µs) of each CPU op: its duration minus its direct children's, per thread."""
    ts = [float(e["ts"]) for e in operations]
    dur = [float(e["dur"]) for e in operations]
    threads = [(str(e.get("pid")), str(e.get("tid"))) for e in operations]
    self_us = list(dur)
    # Per thread, by start time; an op that starts with its parent but lasts less sorts after it.
    order = sorted(range(len(operations)), key=lambda i: (threads[i], ts[i], -dur[i]))
    stack: list[tuple[int, float, tuple[str, str]]] = []  # (row, end time, thread)
    for row in order:
        start, end = ts[row], ts[row] + dur[row]
        while stack and (stack[-1][2] != threads[row] or stack[-1][1] <= start):
            stack.pop()
        if stack:
            self_us[stack[-1][0]] -= dur[row]
        stack.append((row, end, threads[row]))
    return [max(value, 0.0) for value in self_us]


def _device_name(document: dict[str, Any]) -> str | None:
    properties = document.get("deviceProperties") or []
    return properties[0].get("name") if properties and isinstance(properties[0], dict) else None


def activities_from_document(document: dict[str, Any], source: str = "<trace>", scope: str = "steps",
                             cpu_ops: bool = False) -> TraceActivities:
    """Extract timed activities from a parsed trace document (see the module docstring for ``scope``).

    Raises KernelLessGpuTraceError for a GPU program's trace without GPU activity, unless
    ``cpu_ops`` asks for its CPU ops."""
    complete = [e for e in document["traceEvents"] if isinstance(e, dict) and e.get("ph") == "X"]
    gpu = _checked([e for e in complete if e.get("cat") in GPU_CATEGORIES], source)
    if gpu:
        if scope == "steps":
            cpu = [e for e in complete if e.get("cat") not in GPU_CATEGORIES]
            steps = [_number(e.get("ts")) + _number(e.get("dur")) for e in cpu
                     if PROFILER_STEP.match(str(e.get("name", "")))]
            ends = steps or [_number(e.get("ts")) + _number(e.get("dur")) for e in cpu]
            launches = [(c, _number(e.get("ts"))) for e in cpu if (c := _correlation(e)) is not None]
            keep = launched_in_steps([_correlation(e) for e in gpu], launches, max(ends) if ends else None)
            if keep is not None:
                gpu = [e for e, kept in zip(gpu, keep, strict=True) if kept]
        return TraceActivities("gpu", *_columns(gpu), _device_name(document), source)
    device = _device_name(document)
    runtime_calls = sum(e.get("cat") in GPU_HOST_CATEGORIES for e in complete)
    if (device or runtime_calls) and not cpu_ops:
        raise KernelLessGpuTraceError(
            f"{source} is a GPU program's trace (device {device or 'not recorded'}, {runtime_calls} CUDA runtime "
            "calls) without any GPU kernel, memcpy or memset events: the profiler recorded no GPU activity "
            "(CUDA activity off, or a CUPTI range profile); there is no kernel time to break down. "
            "--cpu-ops lists its CPU ops instead")
    operations = _checked([e for e in complete if e.get("cat") == "cpu_op"], source)
    if not operations:
        raise TraceError(f"{source}: no GPU kernels, memory copies or CPU ops in this trace; "
                         "nothing to break down (was the profiler started with any activity?)")
    names, cats, starts, _ = _columns(operations)
    return TraceActivities("cpu", names, cats, starts, _self_times(operations), None, source)


_STEP_NAMES = re.compile(rb'"name":\s*"ProfilerStep#([0-9]+)"')


def count_profiler_steps(path: str | Path, max_trace_mb: float = DEFAULT_MAX_TRACE_MB) -> int:
    """How many distinct ``ProfilerStep#N`` annotations a trace holds (0 when it was recorded without
    a schedule); raises TraceError when the file cannot be read."""
    return len(set(_STEP_NAMES.findall(read_trace_bytes(path, max_trace_mb))))


def load_trace(path: str | Path, scope: str = "steps", cpu_ops: bool = False,
               max_trace_mb: float = DEFAULT_MAX_TRACE_MB) -> TraceActivities:
    """Read a Chrome trace file (or a TensorFlow ``*.xplane.pb``, see detprof.kernels.xplane) and
    return its timed activities (GPU work, else CPU op self times).

    ``scope`` is ``steps`` or ``all`` (module docstring). Raises TraceError for unreadable files,
    non-traces and traces with nothing to measure (KernelLessGpuTraceError for a GPU program's
    trace without GPU activity, unless ``cpu_ops`` asks for its CPU ops). A file or JSON text over
    ``max_trace_mb`` MB raises TraceTooLargeError before it is parsed.
    """
    if scope not in SCOPES:
        raise TraceError(f"scope {scope!r} is not accepted; use one of {', '.join(SCOPES)}")
    if str(path).endswith(".xplane.pb"):  # TensorFlow's profiler: every event of the profiled steps
        return load_xplane(path, read_trace_bytes(path, max_trace_mb))  # under the same cap
    raw = read_trace_bytes(path, max_trace_mb)
    with collector_paused():
        fast = scan_gpu_activities(raw, str(path), scope)
        if fast is not None:
            return fast
        return activities_from_document(parse_trace_document(raw, str(path)), str(path), scope, cpu_ops)
