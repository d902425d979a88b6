"""Framework backends: everything that differs between PyTorch and TensorFlow, behind one protocol.

A backend says which modes it has and what each switches, which workloads it can build, what it
supports beyond timing (a user's own model, locating the first divergent op, batch invariance, an
audit), and how its job and check processes start and are read back. Everything outside this
package asks ``backend_for(name)`` instead of comparing framework names, and never imports a
backend's own modules: a backend is loaded only when it is asked for, so the trace commands
import neither framework, and the TensorFlow side never loads torch.

Adding a backend: a package ``detprof/backends/<name>/`` whose ``__init__`` defines ``BACKEND``
(an object with the attributes and methods of ``Backend``), one line in ``BACKEND_MODULES`` and
its spellings in ``FRAMEWORK_SPELLINGS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from detprof.errors import require

if TYPE_CHECKING:
    from detprof.check.gates import Gate
    from detprof.check.spec import CheckSideSpec, ScriptSideSpec
    from detprof.documents import StabilityRunSpec, ZooRow
    from detprof.infer.spec import InferenceSpec
    from detprof.process.child import ChildResult
    from detprof.workload.request import WorkloadRequest
    from detprof.workload.spec import Workload

# Every spelling ``--framework`` (and a sweep file's ``framework``) accepts, to the canonical name
# that runs, stores and documents carry.
FRAMEWORK_SPELLINGS = {"pytorch": "pytorch", "torch": "pytorch", "tensorflow": "tensorflow", "tf": "tensorflow"}
BACKEND_MODULES = {"pytorch": "detprof.backends.torch", "tensorflow": "detprof.backends.tf"}
DEFAULT_FRAMEWORK = "pytorch"
ACCEPTED = "pytorch or tf (tensorflow)"


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond timing a training step of a zoo arch."""

    own_model: bool  # --model MODULE:FUNCTION, a user's network; --workload, a user's training step
    locate_op: bool  # check --locate-op: the first op whose output differs
    batch_invariance: bool  # check --batch-invariance
    audit: bool  # detprof audit and advise
    script: bool = False  # check --script: a user's own training script, watched step by step
    inference: bool = False  # detprof infer: greedy decoding of a causal language model, the invariance grid
    gates: frozenset[str] = frozenset({"threads", "device"})  # the check gates it runs (detprof.check.gates)
    # The WorkloadRequest fields it can build a workload from (None: all of them); one it cannot is
    # refused by name before anything runs (detprof.workload.resolve.build_workload).
    request_fields: frozenset[str] | None = None


class Backend(Protocol):
    """The protocol every backend's ``BACKEND`` object follows."""

    name: str  # canonical: what runs and documents store ("pytorch", "tensorflow")
    label: str  # for people: "PyTorch", "TensorFlow"
    option: str  # how a command line asks for it: "" for the default, else "--framework tf"
    supports: Capabilities

    def check_modes(self, modes: list[str] | tuple[str, ...], label: str = "mode") -> None:
        """Raise ArgumentError naming the first mode this backend has not (``label`` names the option),
        or a DetprofError when the framework is not installed here."""

    def toggles(self, mode: str) -> dict[str, Any]:
        """What ``mode`` switches, as stored with every job."""

    def check_workload(self, request: WorkloadRequest) -> None:
        """Raise ArgumentError when this backend cannot build ``request``'s workload."""

    def check_user_code(self, workload: Workload, on_gpu: bool) -> None:
        """Run the workload's user code (a --model or --workload) once in a child process and raise
        a UserCodeError in one line when it does not work; nothing for a zoo arch."""

    def determinism_requested(self, toggles: dict[str, Any]) -> tuple[bool, bool]:
        """(whether ``toggles`` ask for any determinism, whether they ask for all this backend offers)."""

    def trace_name(self, stem: str) -> str:
        """The file or folder name of a profiled job's trace, from ``stem``."""

    def start_job(self, spec: dict[str, Any], scratch: str, gpu_uuid: str | None, timeout_s: float) -> ChildResult:
        """Run one overhead job (a JobSpec as JSON) in a process of its own (detprof.process.child),
        its result and log in ``scratch``; how it ended, with the result document it wrote."""

    def run_check_side(self, spec: CheckSideSpec, gpu_uuid: str | None, timeout_s: float) -> dict[str, Any]:
        """Train one side of a check in a process of its own (it reads ``spec`` back from JSON); its
        result document, with ``state``: the final parameters and buffers as numpy arrays by name."""

    def run_script_side(self, spec: ScriptSideSpec, folder: Path, timeout_s: float) -> dict[str, Any]:
        """Run a user's training script once, watched (check --script; ``spec`` as
        detprof.check.script builds it), its files in ``folder``: ``records`` (what its hooks
        wrote, one dict a line), ``exitcode``, ``timed_out``, ``log_tail``, ``pythonhashseed``, and
        ``state`` (final parameters as numpy arrays) or ``ops`` (a recorded step) when written."""

    def run_stability_run(self, spec: StabilityRunSpec, out_dir: Path, environment: dict[str, str],
                          timeout_s: float) -> ChildResult:
        """Train one run of a stability experiment in a process of its own (``spec`` as
        detprof.stability.experiment builds it); it writes its files into ``out_dir``."""

    def run_inference(self, spec: InferenceSpec, folder: Path, gpu_uuid: str | None, timeout_s: float) -> ChildResult:
        """Decode ``spec``'s prompts under each of its settings in a process of its own (detprof infer),
        its result and the logits files it names in ``folder``; how it ended, with its document."""

    def read_state(self, path: Path) -> dict[str, Any]:
        """The arrays of a state this backend's trainings saved at ``path`` (numpy, by name); raises
        when the file is missing or is not one."""

    def expected_nondeterministic_ops(self, workload: Workload) -> list[str]:
        """Ops known to lack a deterministic GPU implementation in this workload's network."""

    def zoo_rows(self) -> list[dict[str, Any]]:
        """One row per arch this backend builds, as ``detprof zoo --json`` prints them."""


def canonical_framework(name: str) -> str:
    """The canonical framework name for what a user typed (torch, tf, TensorFlow, ...);
    ArgumentError naming it and the accepted spellings otherwise."""
    key = name.strip().lower()
    require(key in FRAMEWORK_SPELLINGS, f"--framework {name!r} is not accepted; use {ACCEPTED}")
    return FRAMEWORK_SPELLINGS[key]


def backend_for(name: str | None) -> Backend:
    """The backend of framework ``name`` (any accepted spelling; None for the default), imported now."""
    canonical = canonical_framework(name or DEFAULT_FRAMEWORK)
    module = importlib.import_module(BACKEND_MODULES[canonical])
    backend: Backend = module.BACKEND
    return backend


def all_backends() -> list[Backend]:
    """Every backend, the default first."""
    return [backend_for(name) for name in BACKEND_MODULES]


def require_support(backend: Backend, capability: str, option: str) -> None:
    """Raise ArgumentError unless ``backend`` supports ``capability`` (a Capabilities field); the
    message names ``option`` and the frameworks that have it."""
    _require_having(backend, lambda b: bool(getattr(b.supports, capability)), option)


def require_gate(backend: Backend, gate: Gate) -> None:
    """Raise ArgumentError unless ``backend`` runs ``gate`` (its ``Capabilities.gates``); the message
    names the gate's option and the frameworks that have it."""
    _require_having(backend, lambda b: gate.name in b.supports.gates, gate.option)


def require_request_fields(backend: Backend, fields: list[str], options: dict[str, str]) -> None:
    """Raise ArgumentError for the first of ``fields`` (WorkloadRequest fields a request sets) that
    ``backend`` cannot build from (its ``Capabilities.request_fields``); the message names the
    field's option (``options``) and the frameworks that take it."""
    for field in fields:
        def takes(other: Backend, name: str = field) -> bool:
            accepted = other.supports.request_fields
            return accepted is None or name in accepted

        _require_having(backend, takes, options[field].split("/")[0])


def _require_having(backend: Backend, has: Callable[[Backend], bool], option: str) -> None:
    if has(backend):
        return
    having = [b.label for b in all_backends() if has(b)]
    require(False, f"{option} is not available with {backend.option or '--framework ' + backend.name}; "
                   f"it works with {', '.join(having)}")


def zoo_rows() -> list[ZooRow]:
    """Every backend's arch rows (``detprof zoo --json``), the default backend's first, each with
    its ``document_version`` (the document is a list, so each row carries it)."""
    from detprof.documents import DOCUMENT_VERSION

    rows = [{"document_version": DOCUMENT_VERSION, **row} for backend in all_backends() for row in backend.zoo_rows()]
    return cast("list[ZooRow]", rows)
