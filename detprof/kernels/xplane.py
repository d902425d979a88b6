"""Read a TensorFlow profiler trace (``*.xplane.pb``, an ``XSpace`` protobuf) into timed activities.

The file is decoded here from the protobuf wire format, field by field, so that reading a
TensorFlow trace needs neither TensorFlow nor generated protobuf classes, and a process that holds
torch never loads TensorFlow. The fields read (numbers from TensorFlow's ``xplane.proto``):

    XSpace:   planes = 1
    XPlane:   name = 2, lines = 3, event_metadata = 4 (map id -> XEventMetadata), stat_metadata = 5
    XLine:    name = 2, timestamp_ns = 3, events = 4, display_name = 11
    XEvent:   metadata_id = 1, offset_ps = 2, duration_ps = 3, stats = 4
    XStat:    metadata_id = 1, uint64_value = 3, int64_value = 4, str_value = 5
    XEventMetadata: id = 1, name = 2;  XStatMetadata: id = 1, name = 2

GPU planes (``/device:GPU:N``): each line is a stream, each event a kernel, memcpy or memset, in
µs. Without a GPU plane holding events, the host plane (``/host:CPU``): the TensorFlow ops, whose
events are named ``op_name:OpType``, grouped by ``OpType`` (the analogue of PyTorch's ``aten::``
ops), with self time: an op's duration minus that of the ops nested inside it on the same line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from detprof.kernels.activities import TraceActivities, TraceError

GPU_PLANE_PREFIX = "/device:GPU:"
HOST_PLANE = "/host:CPU"
# Lines the profiler derives for display; their events repeat what the stream lines hold.
DERIVED_LINES = {"Steps", "TensorFlow Name Scope", "TensorFlow Ops", "XLA Modules", "XLA Ops", "Source",
                 "Launch Stats", "Framework Name Scope", "Framework Ops"}
HOST_OP = re.compile(r"^([^:\s]+):([A-Za-z_][A-Za-z0-9_]*)$")
STEP_STAT = "step_num"


class XPlaneError(TraceError):
    """A file that is not a readable XSpace protobuf."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise XPlaneError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise XPlaneError("varint longer than 64 bits")


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field of one message: ints for varints and fixed
    widths, bytes for length-delimited fields."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > end:
                raise XPlaneError("a field runs past the end of its message")
            yield number, wire, data[pos:pos + length]
            pos += length
        elif wire == 1:
            yield number, wire, int.from_bytes(data[pos:pos + 8], "little")
            pos += 8
        elif wire == 5:
            yield number, wire, int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
        else:
            raise XPlaneError(f"unsupported protobuf wire type {wire}")


def _signed(value: int) -> int:
    """A varint read as int64 (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass
class XEvent:
    metadata_id: int
    offset_ps: int = 0
    duration_ps: int = 0
    stats: dict[int, int | str] = field(default_factory=dict)


@dataclass
class XLine:
    name: str = ""
    display_name: str = ""
    timestamp_ns: int = 0
    events: list[XEvent] = field(default_factory=list)


@dataclass
class XPlane:
    name: str = ""
    lines: list[XLine] = field(default_factory=list)
    event_names: dict[int, str] = field(default_factory=dict)
    stat_names: dict[int, str] = field(default_factory=dict)


def _named_entry(data: bytes) -> tuple[int, str]:
    """A map<int64, XEventMetadata|XStatMetadata> entry: (key, the value's name)."""
    key, name = 0, ""
    for number, _, value in _fields(data):
        if number == 1:
            key = _signed(int(value))  # type: ignore[arg-type]
        elif number == 2:
            for inner, _, inner_value in _fields(value):  # type: ignore[arg-type]
                if inner == 2:
                    name = bytes(inner_value).decode("utf-8", "replace")  # type: ignore[arg-type]
    return key, name


def _event(data: bytes) -> XEvent:
    event = XEvent(0)
    for number, _, value in _fields(data):
        if number == 1:
            event.metadata_id = _signed(int(value))  # type: ignore[arg-type]
        elif number == 2:
            event.offset_ps = _signed(int(value))  # type: ignore[arg-type]
        elif number == 3:
            event.duration_ps = _signed(int(value))  # type: ignore[arg-type]
        elif number == 4:
            stat_id = 0
            stat_value: int | str | None = None
            for inner, _, inner_value in _fields(value):  # type: ignore[arg-type]
                if inner == 1:
                    stat_id = _signed(int(inner_value))  # type: ignore[arg-type]
                elif inner in (3, 4):
                    stat_value = _signed(int(inner_value)) if inner == 4 else int(inner_value)  # type: ignore[arg-type]
                elif inner == 5:
                    stat_value = bytes(inner_value).decode("utf-8", "replace")  # type: ignore[arg-type]
            if stat_value is not None:
                event.stats[stat_id] = stat_value
    return event


def _line(data: bytes) -> XLine:
    line = XLine()
    for number, _, value in _fields(data):
        if number == 2:
            line.name = bytes(value).decode("utf-8", "replace")  # type: ignore[arg-type]
        elif number == 11:
            line.display_name = bytes(value).decode("utf-8", "replace")  # type: ignore[arg-type]
        elif number == 3:
            line.timestamp_ns = _signed(int(value))  # type: ignore[arg-type]
        elif number == 4:
            line.events.append(_event(value))  # type: ignore[arg-type]
    return line


def _plane(data: bytes) -> XPlane:
    plane = XPlane()
    for number, _, value in _fields(data):
        if number == 2:
            plane.name = bytes(value).decode("utf-8", "replace")  # type: ignore[arg-type]
        elif number == 3:
            plane.lines.append(_line(value))  # type: ignore[arg-type]
        elif number == 4:
            key, name = _named_entry(value)  # type: ignore[arg-type]
            plane.event_names[key] = name
        elif number == 5:
            key, name = _named_entry(value)  # type: ignore[arg-type]
            plane.stat_names[key] = name
    return plane


def parse_xspace(data: bytes, source: str = "<bytes>") -> list[XPlane]:
    """The planes of a serialized XSpace; raises XPlaneError when ``data`` is not one."""
    try:
        planes = [_plane(value) for number, wire, value in _fields(data) if number == 1 and wire == 2]  # type: ignore[arg-type]
    except XPlaneError as error:
        raise XPlaneError(f"{source} is not a TensorFlow profiler trace (XSpace protobuf): {error}") from None
    if not planes:
        raise XPlaneError(f"{source} holds no profiler planes; expected a TensorFlow *.xplane.pb file")
    return planes


def _self_times(spans: list[tuple[float, float, int]]) -> dict[int, float]:
    """Self time (µs) of each span (start, duration, index) on one line: its duration minus the
    durations of the spans directly inside it."""
    spans = sorted(spans, key=lambda s: (s[0], -s[1]))
    own = {index: duration for _, duration, index in spans}
    stack: list[tuple[float, int]] = []  # (end, index)
    for start, duration, index in spans:
        while stack and stack[-1][0] <= start:
            stack.pop()
        if stack:
            own[stack[-1][1]] -= duration
        stack.append((start + duration, index))
    return own


def profiled_steps(planes: list[XPlane]) -> int:
    """How many distinct ``step_num`` values the host's step markers carry (0 without markers)."""
    steps: set[int | str] = set()
    for plane in planes:
        if plane.name != HOST_PLANE:
            continue
        step_ids = [key for key, name in plane.stat_names.items() if name == STEP_STAT]
        for line in plane.lines:
            for event in line.events:
                for key in step_ids:
                    if key in event.stats:
                        steps.add(event.stats[key])
    return len(steps)


def load_xplane(path: str | Path, data: bytes | None = None) -> TraceActivities:
    """The timed activities of a TensorFlow trace: GPU kernels, memcpys and memsets where a GPU
    plane holds any (kind ``gpu``), else the host's TensorFlow ops with self times (kind ``cpu``).
    Times in µs. ``data`` is the file's bytes when already read. Raises XPlaneError for a file
    that is not an XSpace, or holds neither."""
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise XPlaneError(f"cannot read trace {str(path)!r}: {error.strerror or error}") from None
    planes = parse_xspace(data, str(path))
    names: list[str] = []
    cats: list[str] = []
    ts_us: list[float] = []
    dur_us: list[float] = []
    for plane in planes:
        if not plane.name.startswith(GPU_PLANE_PREFIX):
            continue
        for line in plane.lines:
            if line.name in DERIVED_LINES or line.display_name in DERIVED_LINES:
                continue
            for event in line.events:
                name = plane.event_names.get(event.metadata_id, f"event {event.metadata_id}")
                lowered = name.lower()
                names.append(name)
                cats.append("gpu_memcpy" if lowered.startswith("memcpy") else
                            "gpu_memset" if lowered.startswith("memset") else "kernel")
                ts_us.append(line.timestamp_ns / 1e3 + event.offset_ps / 1e6)
                dur_us.append(event.duration_ps / 1e6)
    if names:
        return TraceActivities("gpu", names, cats, ts_us, dur_us, None, str(path), parser="xplane")
    for plane in planes:
        if plane.name != HOST_PLANE:
            continue
        for line in plane.lines:
            spans = []
            for event in line.events:
                match = HOST_OP.match(plane.event_names.get(event.metadata_id, ""))
                if match:
                    start = line.timestamp_ns / 1e3 + event.offset_ps / 1e6
                    spans.append((start, event.duration_ps / 1e6, len(names)))
                    names.append(match.group(2))
                    cats.append("cpu_op")
                    ts_us.append(start)
                    dur_us.append(event.duration_ps / 1e6)
            for index, own in _self_times(spans).items():
                dur_us[index] = max(own, 0.0)
    if not names:
        raise XPlaneError(f"{path}: no GPU kernels and no TensorFlow ops in this trace")
    return TraceActivities("cpu", names, cats, ts_us, dur_us, None, str(path), parser="xplane")
