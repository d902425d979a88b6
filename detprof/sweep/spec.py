"""A sweep spec: a TOML file naming networks x kernel sizes x modes x GPUs and the protocol.

    archs = ["medium-cnn"]
    workloads = ["examples/token_lm.py:build"]   # your own training steps, optional
    kernel_sizes = [1, 3, 5, 7]
    modes = ["default", "deterministic"]
    gpus = ["h100", "a100"]          # or ["cpu"]
    batch_size = 64
    image_size = 224
    steps = 100
    warmup = 10
    repeats = 3                      # or precision = 0.02

Every mistake is reported as one SpecError naming the file, the key and its line.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detprof.backend import FRAMEWORK_SPELLINGS, canonical_framework
from detprof.errors import ArgumentError
from detprof.gpus import KNOWN_ALIASES
from detprof.modes import MODES
from detprof.workload.resolve import MAX_SEQUENCE_LENGTH, SDPA_BACKENDS
from detprof.zoo import ARCHS, MEDIUM_CNN_KERNEL_SIZES


class SpecError(ArgumentError):
    """A sweep spec that cannot be run: unreadable, not TOML, or a key detprof does not accept."""


FRAMEWORKS = tuple(FRAMEWORK_SPELLINGS)


@dataclass(frozen=True)
class KeyRule:
    """What one spec key accepts: ``kind`` is int, float, bool, str, or a list of one of them."""

    kind: str
    accepts: str  # how the error line describes an accepted value
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | tuple[int, ...] | None = None


KEYS: dict[str, KeyRule] = {
    "name": KeyRule("str", "a name for the sweep (letters, digits, - and _)"),
    "description": KeyRule("str", "a sentence"),
    "framework": KeyRule("str", "pytorch or tensorflow (tf)", choices=FRAMEWORKS),
    "archs": KeyRule("list[str]", f"a list of zoo archs ({', '.join(ARCHS)})", choices=tuple(ARCHS)),
    "workloads": KeyRule("list[str]", "a list of your own training steps, MODULE:FUNCTION as --workload takes them"),
    "kernel_sizes": KeyRule("list[int]", "a list of kernel sizes 1 to 7 (medium-cnn)",
                            choices=tuple(MEDIUM_CNN_KERNEL_SIZES)),
    "modes": KeyRule("list[str]", f"a list of at least two modes, the baseline first ({', '.join(MODES)})",
                     choices=tuple(MODES)),
    "gpus": KeyRule("list[str]", f"a list of GPU types ({', '.join(KNOWN_ALIASES)}) or [\"cpu\"]",
                    choices=("cpu", *KNOWN_ALIASES)),
    "batch_size": KeyRule("int", "an integer from 1 to 65,536", 1, 65_536),
    "image_size": KeyRule("int", "pixels per side, 1 to 4,096 (the image networks)", 1, 4_096),
    "seq_len": KeyRule("int", f"tokens per example, 1 to {MAX_SEQUENCE_LENGTH:,} (the language models)", 1,
                       MAX_SEQUENCE_LENGTH),
    "sdpa_backend": KeyRule("str", f"the attention backend: {', '.join(SDPA_BACKENDS)}", choices=SDPA_BACKENDS),
    "batch_norm": KeyRule("bool", "true or false (small-cnn)"),
    "steps": KeyRule("int", "timed steps per job, 1 to 100,000", 1, 100_000),
    "warmup": KeyRule("int", "warm-up steps per job, 0 to 100,000", 0, 100_000),
    "profile_steps": KeyRule("int", "profiled steps, 0 to 1,000 (0 skips kernel profiling)", 0, 1_000),
    "repeats": KeyRule("int", "pairs of processes, 1 to 50", 1, 50),
    "precision": KeyRule("float", "a fraction such as 0.02 (±2%), or 0 for fixed repeats", 0, 0.999),
    "max_time": KeyRule("float", "seconds per job, > 0 and at most 604,800 (a week)", 1e-9, 604_800.0),
    "threads": KeyRule("int", "CPU threads per job, >= 1", 1),
    "seed": KeyRule("int", "an integer from 0 to 4,294,967,295", 0, 2**32 - 1),
    "job_timeout": KeyRule("float", "seconds per worker process, > 0 and at most 604,800 (a week)", 1e-9,
                           604_800.0),
}
REQUIRED = ("gpus",)  # and archs or workloads, or both


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec. ``modes[0]`` is the baseline every other mode is compared with;
    None means the device's default (see detprof.runner.config)."""

    name: str
    path: str
    archs: tuple[str, ...]
    gpus: tuple[str, ...]
    workloads: tuple[str, ...] = ()  # --workload references, measured after the archs
    modes: tuple[str, ...] = ("default", "deterministic")
    kernel_sizes: tuple[int, ...] = (3,)
    framework: str = "pytorch"
    description: str = ""
    batch_size: int | None = None
    image_size: int | None = None
    seq_len: int | None = None
    sdpa_backend: str | None = None
    batch_norm: bool = False
    steps: int | None = None
    warmup: int | None = None
    profile_steps: int | None = None
    repeats: int | None = None
    precision: float | None = None
    max_time: float | None = None
    threads: int | None = None
    seed: int = 0
    job_timeout: float = 1800.0
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)


def _key_lines(text: str) -> dict[str, int]:
    """Line number (1-based) of each top-level ``key =`` in the file."""
    lines = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.match(r"\s*([A-Za-z0-9_\-]+)\s*=", line)
        if match and match.group(1) not in lines:
            lines[match.group(1)] = number
    return lines


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _check_value(key: str, value: Any, rule: KeyRule, where: str) -> Any:
    def bad(detail: str = "") -> SpecError:
        shown = repr(value) if not isinstance(value, str) else f'"{value}"'
        return SpecError(f"{where}: {key} = {shown} is not accepted{detail}; use {rule.accepts}")

    if rule.kind.startswith("list["):
        item_kind = rule.kind[5:-1]
        if not isinstance(value, list) or not value:
            raise bad()
        items = []
        for item in value:
            item = _check_scalar(item, item_kind)
            if item is None:
                raise bad()
            if rule.choices is not None and (item.lower() if isinstance(item, str) else item) not in rule.choices:
                raise bad(f" ({item!r} is unknown)")
            items.append(item.lower() if isinstance(item, str) and rule.choices is not None else item)
        if len(set(items)) != len(items):
            raise bad(" (a value repeats)")
        return tuple(items)
    checked = _check_scalar(value, rule.kind)
    if checked is None:
        raise bad()
    if rule.choices is not None and checked not in rule.choices:
        raise bad()
    if rule.minimum is not None and checked < rule.minimum or rule.maximum is not None and checked > rule.maximum:
        raise bad()
    if isinstance(checked, float) and not math.isfinite(checked):  # inf and nan pass no budget
        raise bad()
    return checked


def _check_scalar(value: Any, kind: str) -> Any:
    """``value`` as ``kind`` (an int is a valid float), or None when it is not one."""
    actual = _kind_of(value)
    if kind == "float" and actual in ("int", "float"):
        return float(value)
    return value if actual == kind else None


def parse_spec(text: str, path: str = "<spec>") -> SweepSpec:
    """Validate the TOML text of a sweep spec; returns the SweepSpec or raises SpecError naming
    the file, line and key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: not valid TOML: {error}") from None
    lines = _key_lines(text)

    def where(key: str) -> str:
        return f"{path}:{lines[key]}" if key in lines else path

    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in KEYS:
            raise SpecError(f"{where(key)}: unknown key {key!r}; accepted keys: {', '.join(KEYS)}")
        values[key] = _check_value(key, value, KEYS[key], where(key))
    for key in REQUIRED:
        if key not in values:
            raise SpecError(f"{path}: the key {key!r} is missing; use {KEYS[key].accepts}")
    if "archs" not in values and "workloads" not in values:
        raise SpecError(f"{path}: the key 'archs' is missing; use {KEYS['archs'].accepts} (or workloads, "
                        f"{KEYS['workloads'].accepts})")
    values.setdefault("archs", ())
    modes = values.get("modes", ("default", "deterministic"))
    if len(modes) < 2:
        raise SpecError(f"{where('modes')}: modes = {list(modes)} is not accepted; use {KEYS['modes'].accepts}")
    if "kernel_sizes" in values and not any(ARCHS[a].takes_kernel_size for a in values["archs"]):
        raise SpecError(f"{where('kernel_sizes')}: kernel_sizes apply to medium-cnn only, and archs does not "
                        "list it; drop kernel_sizes or add medium-cnn")
    if values.get("batch_norm") and not any(ARCHS[a].takes_batch_norm for a in values["archs"]):
        raise SpecError(f"{where('batch_norm')}: batch_norm applies to small-cnn only, and archs does not list it")
    if "cpu" in values["gpus"] and len(values["gpus"]) > 1:
        raise SpecError(f"{where('gpus')}: gpus mixes \"cpu\" with GPU types; a sweep runs on CPUs or on GPUs, "
                        "use one spec each")
    if "framework" in values:
        values["framework"] = canonical_framework(values["framework"])
    name = values.pop("name", None) or re.sub(r"[^A-Za-z0-9_.\-]", "", Path(path).stem) or "sweep"
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise SpecError(f"{where('name')}: name = \"{name}\" is not accepted; use {KEYS['name'].accepts}")
    return SweepSpec(name=name, path=path, lines=lines, **values)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec file; raises SpecError (one line) when it cannot be used."""
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"sweep spec {str(path)!r} does not exist or is not a file; pass a .toml spec such as "
                        "benchmarks/figure9b.toml")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"sweep spec {str(path)!r} cannot be read: {error}") from None
    return parse_spec(text, str(path))


def with_gpus(spec: SweepSpec, gpus: Sequence[str]) -> SweepSpec:
    """``spec`` with its GPU types replaced by ``gpus`` (names such as ``h200`` or ``cpu``),
    validated as the spec's own key is; raises SpecError naming the value otherwise."""
    from dataclasses import replace

    if isinstance(gpus, str):
        raise SpecError(f"gpus takes a list of GPU types, not the text {gpus!r}")
    given = [part.strip().lower() for part in gpus]
    spelt = ",".join(gpus)  # as --gpus spelt it, for the messages
    if any(not part for part in given):
        raise SpecError(f"--gpus {spelt!r} is not accepted (an empty name); use comma-separated GPU types "
                        f"({', '.join(KNOWN_ALIASES)}) or cpu")
    repeated = next((gpu for index, gpu in enumerate(given) if gpu in given[:index]), None)
    if repeated is not None:  # as the spec's own key refuses duplicates: a repeated GPU is a typo
        raise SpecError(f"--gpus {spelt!r} is not accepted ({repeated!r} is given twice); name each GPU type once")
    checked = tuple(given)
    unknown = [gpu for gpu in checked if gpu not in (KEYS["gpus"].choices or ())]
    if unknown:
        raise SpecError(f"--gpus {spelt!r} is not accepted{f' ({unknown[0]!r} is unknown)' if unknown else ''}; use "
                        f"comma-separated GPU types ({', '.join(KNOWN_ALIASES)}) or cpu")
    if "cpu" in checked and len(checked) > 1:
        raise SpecError(f"--gpus {spelt!r} mixes cpu with GPU types; a sweep runs on CPUs or on GPUs")
    return replace(spec, gpus=checked)
