"""The record file: one training's digests, losses and environment, small enough to commit.

A record is JSON (gzip-compressed when its name ends in ``.gz``), a document of format
``detprof-record`` and a ``format_version``. Version 1 holds (docs/records.md describes each field):

- ``workload``: the network and its synthetic input, as detprof's workload spells it; two records
  are comparable only when these are equal (``identity``);
- ``configuration``: how it was trained (mode, seed, steps, learning rate, device, threads,
  compiled), which may differ between two comparable records;
- ``digest_scheme`` and, per parameter and buffer, a 128-bit digest before the first step
  (``initial``) and after every step (``steps``: ``loss`` as the exact bits of a float in hex,
  ``params``, ``buffers``, ``nonfinite``, ``threads`` and ``sketch``: SKETCH_BUCKETS float64 sums
  of the parameters' count sketch, in base64, from which the distance of two records' weights is
  estimated);
- ``ops``: per chosen step, every op of the step with its module, pass, and the digests of what it
  read and wrote;
- ``ulp_control``: step 1's digests with one element moved by one ulp (the comparison's control);
- ``environment``: versions, GPU, CPU, BLAS, threads, switches and variables, as the run read them.

Pure Python and numpy: the parent reads, writes and compares records without a framework.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import zlib
from pathlib import Path, PurePath
from typing import Any, TypedDict

import numpy as np

from detprof.errors import ArgumentError

FORMAT = "detprof-record"
FORMAT_VERSION = 1
SKETCH_BUCKETS = 128  # element i of the parameters goes into bucket i mod 128 ...
SKETCH_PERIOD = 1_000_003  # ... with the sign of position i mod SKETCH_PERIOD (a prime) of the sign pattern:
SPLITMIX64 = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)  # the top bit of SplitMix64(position)
# The fields every record of this version has; a file without one is damaged, not a record.
REQUIRED = ("format", "format_version", "workload", "configuration", "digest_scheme", "parameters", "buffers",
            "steps", "environment")
# Workload fields that do not make two records incomparable: how it ran, not what it is.
RUN_FIELDS = frozenset({"compiled"})


class Record(TypedDict, total=False):
    """A record as read and written (see the module docstring)."""

    format: str
    format_version: int
    created_at: str
    detprof: str
    framework: str
    workload: dict[str, Any]
    configuration: dict[str, Any]
    digest_scheme: str
    parameters: list[str]
    buffers: list[str]
    initial: dict[str, Any] | None
    steps: list[dict[str, Any]]
    ops: dict[str, list[dict[str, Any]]]
    ulp_control: dict[str, Any] | None
    nondeterministic_ops: list[str]
    environment: dict[str, Any]


class RecordError(ArgumentError):
    """A file that is not a record this detprof can read: missing, damaged, another format, or a
    newer version. Its message is one line naming the file."""


def detprof_version() -> str:
    """This detprof's version, or "source" when it runs from a tree that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("detprof")
    except PackageNotFoundError:
        return "source"


def new_record(**fields: Any) -> Record:
    """A record of ``fields`` (a Record's own), stamped with the format, its version, the time it was
    made (UTC) and this detprof's version."""
    from datetime import UTC, datetime

    stamped: Record = {"format": FORMAT, "format_version": FORMAT_VERSION,
                       "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "detprof": detprof_version()}
    stamped.update(fields)  # type: ignore[typeddict-item]  # a Record's own fields, as the makers pass them
    return stamped


def require_writable(path: str | Path, option: str = "--out") -> None:
    """RecordError in one line, before anything runs, when a record could never be written to
    ``path``: a folder, or a path under a file."""
    target = Path(path)
    if target.is_dir():
        raise RecordError(f"{option} {str(path)!r} is not accepted: it is a folder; give a file name (.json or "
                          ".json.gz)")
    parent = next((p for p in target.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise RecordError(f"{option} {str(path)!r} is not accepted: {str(parent)!r} is a file, not a folder")


def write_record(record: Record, path: str | Path) -> Path:
    """Write ``record`` to ``path`` (gzip when it ends in .gz), whole or not at all: a temporary file
    beside it is renamed over it. Returns the path."""
    target = Path(path)
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    data = gzip.compress(text.encode(), mtime=0) if target.name.endswith(".gz") else text.encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_bytes(data)
        partial.replace(target)
    except OSError as error:  # a full disk, a read-only folder: said in one line, the partial file removed
        partial.unlink(missing_ok=True)
        raise RecordError(f"the record could not be written to {str(path)!r}: {error.strerror or error}") from None
    return target


def read_record(path: str | Path, label: str | None = None) -> Record:
    """The record at ``path``, checked; RecordError in one line (naming ``label`` or the path) when
    it is missing, not a record, damaged, or of a newer format version."""
    shown = label or str(path)
    source = Path(path)
    if not source.is_file():
        raise RecordError(f"record {shown!r} is not accepted: {'it is a folder' if source.is_dir() else 'no such file'}"
                          "; give a file `detprof record` wrote")
    raw = source.read_bytes()
    try:
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
        document = json.loads(text)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = " ".join(str(error).split())[:120]
        raise RecordError(f"record {shown!r} is damaged: {reason}; record it again or restore it from git") from None
    return check_record(document, shown)


def check_record(document: Any, shown: str) -> Record:
    """``document`` as a Record when it is one of a version this detprof reads; RecordError otherwise."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise RecordError(f"record {shown!r} is not a detprof record (no \"format\": \"{FORMAT}\"); give a file "
                          "`detprof record` wrote")
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordError(f"record {shown!r} is damaged: format_version {version!r} is not a version number")
    if version > FORMAT_VERSION:
        raise RecordError(f"record {shown!r} has format version {version}, newer than this detprof reads "
                          f"(up to {FORMAT_VERSION}); upgrade detprof to compare it")
    missing = [name for name in REQUIRED if name not in document]
    if missing:
        raise RecordError(f"record {shown!r} is damaged: it has no {', '.join(missing)}")
    problem = _shape_problem(document)
    if problem:
        raise RecordError(f"record {shown!r} is damaged: {problem}")
    return document  # type: ignore[return-value]  # checked above


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _digests(step: Any, count: int, buffers: int) -> bool:
    """True when ``step`` holds one digest (text) per parameter and none or one per buffer."""
    return (isinstance(step, dict) and _strings(step.get("params")) and len(step["params"]) == count
            and (step.get("buffers") in (None, []) or (_strings(step["buffers"]) and len(step["buffers"]) == buffers))
            and (step.get("loss") is None or isinstance(step["loss"], str)))


def _shape_problem(document: dict[str, Any]) -> str | None:
    """What about a record's fields a comparison could not read (a wrong type, a missing digest), in
    words; None when every field it reads has its shape."""
    for name in ("workload", "configuration", "environment"):
        if not isinstance(document[name], dict):
            return f"{name} is not an object"
    if not isinstance(document["workload"].get("arch"), str):
        return "its workload names no arch or script"
    configuration = document["configuration"]
    if not all(isinstance(configuration.get(name), str) for name in ("mode", "device", "device_name")):
        return "its configuration does not name its mode, device and device name"
    if not _strings(document["parameters"]) or not _strings(document["buffers"]):
        return "parameters and buffers are not lists of names"
    count, buffers = len(document["parameters"]), len(document["buffers"])
    steps = document["steps"]
    if not isinstance(steps, list) or not all(_digests(step, count, buffers) for step in steps):
        return "a step does not hold one digest per parameter"
    initial = document.get("initial")
    if initial is not None and not _digests(initial, count, buffers):
        return "its initial digests do not match its parameters"
    ops = document.get("ops") or {}
    op_fields = ("index", "op", "phase", "module")
    if not isinstance(ops, dict) or not all(
            isinstance(recorded, list) and all(isinstance(op, dict) and all(k in op for k in op_fields)
                                               and isinstance(op["index"], int) for op in recorded)
            for recorded in ops.values()):
        return "its ops are not lists of recorded ops"
    control = document.get("ulp_control")
    if control is not None and not (isinstance(control, dict) and _strings(control.get("params"))
                                    and len(control["params"]) == count and isinstance(control.get("parameter"), str)
                                    and isinstance(control.get("index", 0), int)):
        return "its 1-ulp control does not hold one digest per parameter"
    return None


# Workload fields that name the user's code by a path: compared by file name, so that a record made
# in another folder (a CI runner's checkout, a moved repository) is of the same workload.
PATH_FIELDS = ("model_ref", "workload_ref")
DESCRIPTIVE_FIELDS = frozenset({"source"})  # a decoding's model in words, holding paths: not its identity


def _by_file_name(reference: Any) -> Any:
    """``path/to/net.py:build`` as ``net.py:build``; an importable module's reference as it is."""
    if not isinstance(reference, str) or ":" not in reference:
        return reference
    module, function = reference.rsplit(":", 1)
    return f"{PurePath(module).name}:{function}" if module.endswith(".py") else reference


def identity(record: Record) -> dict[str, Any]:
    """What a record is of: its framework and workload without the fields of how it ran (RUN_FIELDS)
    or of words (DESCRIPTIVE_FIELDS), the user's code named by its file's name (PATH_FIELDS)."""
    workload = {k: _by_file_name(v) if k in PATH_FIELDS else v for k, v in record["workload"].items()
                if k not in RUN_FIELDS | DESCRIPTIVE_FIELDS}
    return {"framework": record.get("framework", "pytorch"), **workload}


def sign_pattern() -> np.ndarray:
    """The sketch's [SKETCH_PERIOD] signs, +1.0 and -1.0: the top bit of SplitMix64(position), in
    unsigned 64-bit arithmetic (the same on every machine)."""
    gamma, first, second = (np.uint64(value) for value in SPLITMIX64)
    with np.errstate(over="ignore"):
        x = np.arange(SKETCH_PERIOD, dtype=np.uint64) + gamma
        x = (x ^ (x >> np.uint64(30))) * first
        x = (x ^ (x >> np.uint64(27))) * second
        x = x ^ (x >> np.uint64(31))
    return 1.0 - 2.0 * (x >> np.uint64(63)).astype(np.float64)


def array_sketch(values: np.ndarray, pattern: np.ndarray | None = None) -> str:
    """The count sketch of ``values`` (flattened, as float64) in base64, as the torch backend's
    weight_sketch computes it for parameters: element i into bucket i mod SKETCH_BUCKETS with the
    sign of pattern position i mod SKETCH_PERIOD. ``pattern``: sign_pattern(), when made already."""
    signs = sign_pattern() if pattern is None else pattern
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    sums = np.zeros(SKETCH_BUCKETS, dtype=np.float64)
    for start in range(0, flat.size, SKETCH_PERIOD):
        part = flat[start:start + SKETCH_PERIOD] * signs[:min(SKETCH_PERIOD, flat.size - start)]
        lead = start % SKETCH_BUCKETS
        padded = np.concatenate([np.zeros(lead), part, np.zeros(-(lead + part.size) % SKETCH_BUCKETS)])
        sums += padded.reshape(-1, SKETCH_BUCKETS).sum(axis=0)
    return base64.b64encode(sums.astype("<f8").tobytes()).decode("ascii")


def sketch_values(encoded: str | None) -> np.ndarray | None:
    """A step's sketch as SKETCH_BUCKETS float64 values; None when the step has none."""
    if not encoded or not isinstance(encoded, str):
        return None
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:  # binascii.Error: not base64 (a damaged record)
        return None
    if len(raw) != 8 * SKETCH_BUCKETS:
        return None
    return np.frombuffer(raw, dtype="<f8")


def sketch_distance(a: str | None, b: str | None) -> float | None:
    """Estimated L2 distance between two records' parameters at one step, from their sketches
    (within about 6%, one standard deviation, with SKETCH_BUCKETS 128); None when either has none."""
    values_a, values_b = sketch_values(a), sketch_values(b)
    if values_a is None or values_b is None:
        return None
    distance = float(np.sqrt(np.sum((values_a - values_b) ** 2)))
    return distance if math.isfinite(distance) else math.inf
