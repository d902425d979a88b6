"""What one run of a check is told, as one typed record the parent writes and the child reads.

``CheckSideSpec`` crosses the process boundary as JSON (``to_json``, ``from_json``): the parent
(detprof.check.run, detprof.check.script) builds it, a backend's check process reads it back and
refuses a field it does not know, so a misspelt field fails loudly instead of reading as None. The
gates' side fields (detprof.check.gates: loader_workers, world_size, bucket_cap_mb, accumulation)
travel in ``gates``, checked against the gate table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from detprof.check.gates import GATES
from detprof.shapes import known_fields
from detprof.workload.spec import Workload

# The side fields a gate may set (threads is a field of its own: every run has a thread count).
GATE_FIELDS = frozenset(gate.side_field for gate in GATES if gate.side_field and gate.side_field != "threads")
TRAIN = "train_and_record"  # the entry that trains and records every step (the others: op recording, audit, ...)


class SpecError(ValueError):
    """A check side spec with a field nobody reads: a misspelling, or a version mismatch."""


@dataclass(frozen=True)
class CheckSideSpec:
    """One run of a check: the workload, the mode and its toggles, device, threads, seed and steps,
    the entry it runs, and what its gates set (see the module docstring)."""

    workload: Workload
    mode: str
    toggles: dict[str, Any]
    device: str  # "cpu" or "cuda:0" (the process sees only its GPU)
    threads: int | None  # CPU intra-op threads; None: the framework's default (a GPU run)
    seed: int
    steps: int
    entry: str = TRAIN
    digest: str = "host"  # how tensors are hashed: "host" or "device" (detprof.backends.torch.oprecord)
    inductor_fallback_random: bool = False  # compiled dropout draws from eager's generator
    gates: dict[str, Any] = field(default_factory=dict)  # a gate's side field to this run's value
    locate_step: int | None = None  # record_ops_at_step: the step whose ops are recorded
    save_at: int | None = None  # the restart gate: save a checkpoint after this step and stop
    checkpoint: str | None = None  # ... into this folder
    resume_from: str | None = None  # the restart gate: go on from the checkpoint in this folder
    batch_sizes: tuple[int, ...] = ()  # batch_invariance: the batch sizes compared with 1
    learning_rate: float | None = None  # the optimizer's learning rate instead of the workload's own
    record: bool = False  # detprof record: also a weight sketch per step and the environment fingerprint

    def __post_init__(self) -> None:
        unknown = sorted(set(self.gates) - GATE_FIELDS)
        if unknown:
            raise SpecError(f"check side spec: no gate sets {', '.join(unknown)}; gate fields: "
                            f"{', '.join(sorted(GATE_FIELDS))}")

    def gate(self, side_field: str) -> Any:
        """This run's value of a gate's side field; None when the gate was not given."""
        return self.gates.get(side_field)

    def but(self, **changes: Any) -> CheckSideSpec:
        """The same spec with ``changes`` (field names checked)."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The spec as a JSON-able dict (the workload as its own dict)."""
        data = asdict(self)
        data["workload"] = self.workload.as_dict()
        data["batch_sizes"] = list(self.batch_sizes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckSideSpec:
        """The spec ``to_json`` wrote; SpecError naming any field it does not have."""
        data = _known(cls, data, "check side spec")
        return cls(**{**data, "workload": Workload.from_dict(data["workload"]),
                      "batch_sizes": tuple(data.get("batch_sizes") or ())})


@dataclass(frozen=True)
class ScriptSideSpec:
    """One watched run of a user's script (check --script): the script and its arguments, the
    optimizer steps compared, the mode applied first (None: as it is), its CPU threads (None: what
    the script sets), its PYTHONHASHSEED, the step whose ops are recorded (None: no recording), and
    whether it is a record's run (detprof.records)."""

    script: str
    arguments: tuple[str, ...]
    steps: int
    mode: str | None
    threads: int | None
    pythonhashseed: str
    locate_step: int | None = None
    record: bool = False  # detprof record --script: digests of the device scheme, a weight sketch per step,
    # and the environment fingerprint at the end

    def to_json(self) -> dict[str, Any]:
        """The spec as a JSON-able dict."""
        return {**asdict(self), "arguments": list(self.arguments)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScriptSideSpec:
        """The spec ``to_json`` wrote; SpecError naming any field it does not have."""
        return cls(**{**_known(cls, data, "script side spec"), "arguments": tuple(data.get("arguments") or ())})


def _known(cls: type, data: dict[str, Any], what: str) -> dict[str, Any]:
    """``data`` when every key is a field of ``cls``; SpecError naming the others."""
    return known_fields(cls, data, what, SpecError)
