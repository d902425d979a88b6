"""``detprof check`` and ``detprof audit`` as a Python API: dictionaries out, as ``--json`` prints them.

check: two trainings of the same model from the same seeds and data, each in a fresh process,
differing only in what was asked (nothing, the CPU thread count, or the device), compared step by
step; with ``locate_op``, both re-run up to the first divergent step recording every op, to name
the first op whose output differs while its inputs matched. audit: one step in deterministic
mode, listing every op without a deterministic implementation and what the mode swaps.
The trainings run in the framework's backend (detprof.backend); the comparison is
detprof.check.compare.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from detprof.backend import backend_for, canonical_framework, require_gate, require_support
from detprof.check.compare import first_divergence, first_divergent_op, max_abs_diff, sensitivity, states_bitwise_equal
from detprof.check.gates import (
    GATE_BY_NAME,
    GATES,
    Fit,
    Pair,
    differing_factor,
    given_options,
    require_fit,
    settle_gates,
)
from detprof.check.limits import (
    DEFAULT_AUDIT_STEPS,
    DEFAULT_BATCH_SIZES,
    DEFAULT_STEPS,
    MAX_STEPS,
    RUN_TIMEOUT_S,
)
from detprof.check.spec import GATE_FIELDS, CheckSideSpec
from detprof.check.verdict import conclude_check, threads_run
from detprof.documents import DOCUMENT_VERSION, AuditDocument, BatchInvarianceDocument, CheckDocument, CheckSide
from detprof.errors import require
from detprof.gpus import DeviceChoice, select_device
from detprof.runner.config import CPU_THREADS
from detprof.workload import Workload, WorkloadRequest, build_workload


def require_batch_invariance_alone(gates: Mapping[str, Pair], locate_op: bool = False,
                                   steps: int | None = None) -> None:
    """Raise ArgumentError when a batch-invariance check is asked for with an option of a training
    check (it compares batch sizes in one run): ``locate_op``, ``steps``, or a gate other than one
    thread count for its one run."""
    given = (["--locate-op"] if locate_op else []) + (["--steps"] if steps is not None else [])
    given += given_options(gates, allowed=("threads",))
    require(not given, f"--batch-invariance compares batch sizes in one run; drop {', '.join(given)}")
    threads = gates.get("threads")
    cpus = os.cpu_count() or 1
    spelled = GATE_BY_NAME["threads"].spell(threads) if threads else ""
    require(threads is None or threads[0] == threads[1],
            f"--threads {spelled!r} is not accepted here; use one count from 1 to {cpus}")


MAX_TIMEOUT_S = 7 * 24 * 3600.0  # a week


def require_timeout(timeout_s: float) -> None:
    """Raise ArgumentError unless ``--timeout`` is a number of seconds above 0, at most a week."""
    require(0 < timeout_s <= MAX_TIMEOUT_S, f"--timeout {timeout_s:g} is not accepted; use seconds above 0, at most "
                                            f"{MAX_TIMEOUT_S:,.0f} (a week)")


def require_steps(steps: int) -> None:
    """Raise ArgumentError unless a check's ``--steps`` is from 1 to MAX_STEPS."""
    require(1 <= steps <= MAX_STEPS, f"--steps {steps} is not accepted; use 1 to {MAX_STEPS:,}")


def side_spec(workload: Workload, mode: str, device: DeviceChoice, threads: int | None, seed: int,
               steps: int, framework: str = "pytorch", **more: Any) -> CheckSideSpec:
    """What one check run is told: the workload, the mode and its toggles, device, threads (none on a
    GPU), seed, steps, and ``more`` (CheckSideSpec's other fields)."""
    return CheckSideSpec(workload, mode, backend_for(framework).toggles(mode), device.torch_device,
                         threads if device.kind == "cpu" else None, seed, steps, **more)


def run_check(request: WorkloadRequest | None = None, mode: str = "deterministic", gpu: str | None = "auto",
              gates: Mapping[str, Pair] | None = None, steps: int = DEFAULT_STEPS, seed: int = 0,
              locate_op: bool = False, timeout_s: float = RUN_TIMEOUT_S,
              on_progress: Callable[[str], None] | None = None, framework: str = "pytorch") -> CheckDocument:
    """Train ``request``'s workload twice and compare; returns bitwise_identical, max_abs_diff (over
    all parameters and buffers after the last step) and first_divergence (null, or step, parameter
    and, with ``locate_op``, the op). ``gates`` makes the two runs differ in one factor: a gate's
    name (detprof.check.gates.GATES) to its (run A, run B) values, such as ``{"threads": (1, 2)}``,
    ``{"device": ("cpu", "cuda")}``, ``{"compile": (False, True)}`` (run B through torch.compile,
    Inductor's RNG falling back to eager's, so that dropout draws alike), ``{"restart": (None, K)}``
    (run B saved after step K and trained on in a new process), ``{"workers": (0, 2)}``,
    ``{"world-size": (1, 2)}`` or ``{"bucket-cap": (1.0, 25.0)}``; a gate with two equal values
    sets that factor in both runs. Without one, both runs are the same configuration. ``framework``
    is any spelling of a backend's name (tf trains the Keras model in TensorFlow)."""
    framework = canonical_framework(framework)
    backend = backend_for(framework)
    if locate_op:
        require_support(backend, "locate_op", "--locate-op")
    backend.check_modes([mode], "--mode")  # an unknown mode fails here, before anything runs
    require_steps(steps)
    require_timeout(timeout_s)
    require(0 <= seed < 2**32, f"--seed {seed} is not accepted; use an integer from 0 to {2**32 - 1:,}")
    settled = settle_gates(gates or {}, locate_op, bool(request and request.compiled))
    for name in settled:
        require_gate(backend, GATE_BY_NAME[name])
    require_fit(settled, Fit(steps, None))  # what the steps decide, before anything is built
    sides_devices = _side_devices(settled.get("device"), gpu)
    if "compile" in settled:
        request = replace(request or WorkloadRequest(), compiled=True)  # checks the compiler, once
    workload = build_workload(request or WorkloadRequest(), sides_devices[0], framework)
    require(not (locate_op and workload.compiled), "--locate-op records the eager ops of a step, which compiled code "
                                                   "replaces with Inductor's kernels; drop --locate-op or --compile")
    require_fit(settled, Fit(steps, workload.batch_size))
    side_workloads = ([replace(workload, compiled=bool(compiled)) for compiled in settled["compile"]]
                      if "compile" in settled else [workload, workload])
    side_threads = settled.get("threads", (CPU_THREADS, CPU_THREADS))
    # Both sides hash alike: on the device whenever one of them has a GPU (see digests.DIGEST_SCHEMES).
    digest = "device" if any(dev.kind == "cuda" for dev in sides_devices) else "host"
    side_gates = [{GATE_BY_NAME[name].side_field: pair[side] for name, pair in settled.items()
                   if GATE_BY_NAME[name].side_field in GATE_FIELDS} for side in (0, 1)]
    specs = [side_spec(workload_of_side, mode, dev, t, seed, steps, framework, digest=digest,
                        inductor_fallback_random="compile" in settled, gates=gates_of_side)
             for workload_of_side, dev, t, gates_of_side in zip(side_workloads, sides_devices, side_threads,
                                                                 side_gates, strict=True)]
    uuids = [dev.gpu.uuid if dev.gpu else None for dev in sides_devices]
    restart_at = settled["restart"][1] if "restart" in settled else None
    runs = []
    for label, spec, uuid in zip("AB", specs, uuids, strict=True):
        if label == "B" and restart_at is not None:
            runs.append(_restarted_side(backend, spec, uuid, timeout_s, restart_at, on_progress))
            continue
        if on_progress:
            compiling = (", compiled: torch.compile builds its kernels in the first step, which can take minutes"
                         if spec.workload.compiled else "")
            on_progress(f"run {label}: {steps} steps on {spec.device}, {spec.threads or 'default'} "
                        f"thread(s){compiling}")
        runs.append(backend.run_check_side(spec, uuid, timeout_s))
    divergence = first_divergence(runs[0], runs[1])
    identical = divergence is None and states_bitwise_equal(runs[0]["state"], runs[1]["state"])
    if divergence and locate_op:
        records = []
        for label, spec, uuid in zip("AB", specs, uuids, strict=True):
            if on_progress:
                on_progress(f"run {label} again, recording every op of step {divergence['step']}")
            records.append(backend.run_check_side(spec.but(entry="record_ops_at_step",
                                                           locate_step=divergence["step"]), uuid, timeout_s))
        divergence["op"] = first_divergent_op(records[0]["ops"], records[1]["ops"])
        divergence["ops_recorded"] = len(records[0]["ops"])
    sides: list[CheckSide] = [{"device": run["device"], "threads": run["threads"], "threads_run": threads_run(run),
                               "nondeterministic_ops": run["nondeterministic_ops"],
                               "compiled": bool(run.get("compiled")), "version": run.get("version", ""),
                               "inductor_deterministic": run.get("inductor_deterministic")} for run in runs]
    control = sensitivity(runs[0])
    verdict, reasons = conclude_check(identical, runs, control, mode, settled.get("threads"))
    document: CheckDocument = {
        "document_version": DOCUMENT_VERSION, "workload": workload.as_dict(), "framework": framework, "mode": mode,
        "steps": steps, "seed": seed, "differing_factor": differing_factor(settled), "runs": sides,
        "bitwise_identical": identical, "verdict": verdict, "verdict_reasons": reasons,
        "max_abs_diff": max_abs_diff(runs[0]["state"], runs[1]["state"]), "first_divergence": divergence,
        "sensitivity": control}
    for gate in GATES:  # what each gate keeps of its values, in the table's order
        if gate.name in settled:
            document.update(gate.record(settled[gate.name], settled, runs))  # type: ignore[typeddict-item]
    return document


def _side_devices(wanted: Pair | None, gpu: str | None) -> list[DeviceChoice]:
    """Each run's device: ``gpu``'s for both, or with the device gate, the CPU or a GPU as each asks."""
    if wanted is None:
        chosen = select_device(gpu)
        return [chosen, chosen]
    sides = [select_device("cpu" if d == "cpu" else (gpu if gpu not in (None, "cpu") else "auto")) for d in wanted]
    for asked, got in zip(wanted, sides, strict=True):
        require(asked == "cpu" or got.kind == "cuda", "--devices asks for cuda, but this machine has no GPU")
    return sides


def _restarted_side(backend: Any, spec: CheckSideSpec, uuid: str | None, timeout_s: float, restart_at: int,
                    on_progress: Callable[[str], None] | None) -> dict[str, Any]:
    """Run B of the restart gate: ``restart_at`` steps, a checkpoint, then a new process that loads it
    and trains to the end; one result, its steps from both processes."""
    with tempfile.TemporaryDirectory(prefix="detprof-restart-") as folder:
        if on_progress:
            on_progress(f"run B: {restart_at} steps, then a checkpoint")
        before = backend.run_check_side(spec.but(save_at=restart_at, checkpoint=folder), uuid, timeout_s)
        if on_progress:
            on_progress(f"run B again in a new process: load the checkpoint, steps {restart_at + 1} to {spec.steps}")
        after = backend.run_check_side(spec.but(resume_from=folder), uuid, timeout_s)
    return {**after, "initial": before.get("initial"), "steps": before["steps"] + after["steps"]}


def run_batch_invariance(request: WorkloadRequest | None = None, mode: str = "deterministic",
                         gpu: str | None = "auto", batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES,
                         threads: int | None = None, seed: int = 0, timeout_s: float = RUN_TIMEOUT_S,
                         framework: str = "pytorch") -> BatchInvarianceDocument:
    """Are the model's eval-mode outputs for an example bitwise the same whatever the batch it is
    in? Per batch size: examples, how many match batch size 1 bit for bit, their fraction, and the
    largest absolute difference. Only for a backend that supports it (``framework`` as any spelling
    ``--framework`` takes); the request's batch size is not used; ``threads``: the CPU threads of its
    one run (default detprof's)."""
    backend = backend_for(framework)
    require_support(backend, "batch_invariance", "--batch-invariance")
    require_timeout(timeout_s)
    backend.check_modes([mode], "--mode")
    if threads is not None:
        settle_gates({"threads": (threads, threads)})  # refused as --threads would be
    require(all(1 <= b <= 64 for b in batch_sizes),
            f"--batch-sizes {','.join(map(str, batch_sizes))} is not accepted; use sizes from 1 to 64")
    device = select_device(gpu)
    workload = build_workload(replace(request or WorkloadRequest(), batch_size=None), device, backend.name)
    side_threads = CPU_THREADS if threads is None else threads
    spec = side_spec(workload, mode, device, side_threads, seed, 0, backend.name, batch_sizes=tuple(batch_sizes),
                      entry="batch_invariance")
    result = backend.run_check_side(spec, device.gpu.uuid if device.gpu else None, timeout_s)
    return {"document_version": DOCUMENT_VERSION, "workload": workload.as_dict(), "mode": mode,
            "device": device.name, "reference_batch_size": result["reference_batch_size"], "rows": result["rows"],
            "batch_invariant": all(row["fraction_equal"] == 1.0 for row in result["rows"])}


OUTSIDE_MODULES = "(outside any module)"


def group_findings(warned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The audit's findings, one entry per op in the order first met: ``count`` calls, the ops it
    was ``dispatched_as``, and its ``sites``: each (module, pass) it ran in, with its calls there,
    so that a module is never separated from the pass it ran in. ``modules`` and ``phases`` list
    the same, flattened; ``steps`` the training steps it ran in."""
    grouped: dict[str, dict[str, Any]] = {}
    for finding in warned:
        entry = grouped.setdefault(finding["name"], {"op": finding["name"], "count": 0, "dispatched_as": set(),
                                                     "sites": {}, "steps": set()})
        entry["count"] += 1
        entry["steps"].add(int(finding.get("step") or 1))
        entry["dispatched_as"].add(finding["op"])
        site = (finding["module"] or OUTSIDE_MODULES, finding["phase"])
        entry["sites"][site] = entry["sites"].get(site, 0) + 1
    return [{"op": e["op"], "count": e["count"], "dispatched_as": sorted(e["dispatched_as"]),
             "sites": [{"module": module, "phase": phase, "count": count}
                       for (module, phase), count in e["sites"].items()],
             "modules": sorted({module for module, _ in e["sites"]}),
             "phases": sorted({phase for _, phase in e["sites"]}), "steps": sorted(e["steps"])}
            for e in grouped.values()]


def run_audit(request: WorkloadRequest | None = None, gpu: str | None = "auto", timeout_s: float = RUN_TIMEOUT_S,
              on_progress: Callable[[str], None] | None = None, framework: str = "pytorch",
              steps: int = DEFAULT_AUDIT_STEPS) -> AuditDocument:
    """``steps`` training steps of ``request``'s workload in deterministic mode: every op with no
    deterministic implementation on this device (op, count, the modules that called it, whether in
    the forward or backward pass, and the steps), and what the mode swaps, from the kernel diff of a
    profiled step in each mode (calls and µs). ``fully_deterministic`` is True when there is no such
    op and the code under audit never turned deterministic algorithms off (``switched_off``: the
    first op it ran so). An op first taken after the last audited step is not covered: raise
    ``steps`` for that. ``on_progress(text)`` is called once every value has been checked, as the
    work starts."""
    from detprof.runner.config import OverheadConfig, default_protocol

    backend = backend_for(framework)
    require_support(backend, "audit", "audit")
    require_steps(steps)
    require_timeout(timeout_s)
    device = select_device(gpu)
    workload = build_workload(request or WorkloadRequest(), device, backend.name)
    from detprof.kernels import diff_tables  # pandas and scipy: only once every value has been checked
    from detprof.runner.launcher import measure_overhead
    spec = side_spec(workload, "deterministic", device, CPU_THREADS, 0, steps, backend.name, entry="audit_step")
    if on_progress:
        on_progress(f"audit: {steps} step(s) in deterministic mode, then one profiled step per mode")
    audit = backend.run_check_side(spec, device.gpu.uuid if device.gpu else None, timeout_s)
    ops = group_findings(audit["nondeterministic"])
    protocol = replace(default_protocol(device.kind == "cuda", warmup_steps=1, timed_steps=1, profile_steps=1,
                                        repeats=1), precision=None, max_time_s=None)
    config = OverheadConfig(workload, protocol, ("default", "deterministic"), device.torch_device,
                            device.gpu.index if device.gpu else None,
                            gpu_uuid=device.gpu.uuid if device.gpu else None)
    with tempfile.TemporaryDirectory(prefix="detprof-audit-") as traces:
        profiled = measure_overhead(config, device.kind, device.name, traces)
    swapped: list[dict[str, Any]] = []
    if {"default", "deterministic"} <= set(profiled.kernel_tables):
        diff = diff_tables(profiled.kernel_tables["default"], profiled.kernel_tables["deterministic"])
        moved = diff[(diff["status"] != "changed") | (diff["calls_a"] != diff["calls_b"])]
        swapped = moved.head(15).to_dict(orient="records")
    switched_off = audit.get("switched_off")
    per_step = audit.get("ops_per_step") or [audit["ops"]]
    return {"document_version": DOCUMENT_VERSION, "workload": workload.as_dict(), "device": device.name,
            "fully_deterministic": not ops and not switched_off, "steps_audited": steps,
            "ops_per_step": per_step, "switched_off": switched_off,
            "nondeterministic_ops": ops, "ops_in_step": per_step[0], "swapped_kernels": swapped,
            "kernel_diff_available": bool(swapped) or len(profiled.kernel_tables) == 2,
            "version": audit.get("version", "")}
