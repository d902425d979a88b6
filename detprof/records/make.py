"""``detprof record`` as a Python API: train a workload for a few steps in a fresh process and
keep what would tell a later run apart from it, as a Record (detprof.records.format).

The training is a check's run (detprof.check.run): the same workload, seeds, synthetic batch and
modes, with the record's extras on (a weight sketch per step and the environment fingerprint).
Digests are always the ``device`` scheme, exact integer sums that come out the same on every
device, so that a GPU's record compares with a CPU's. Each step of ``ops_at`` is trained again in
a process of its own that records every op of that step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from detprof.backend import backend_for
from detprof.check.limits import RUN_TIMEOUT_S
from detprof.errors import require
from detprof.records.format import Record, new_record
from detprof.workload import WorkloadRequest

DEFAULT_RECORD_STEPS = 3
MAX_RECORD_STEPS = 1000  # a record keeps every step's digests: a golden file stays small
DIGEST_SCHEME = "device"  # exact on every device (detprof.backends.torch.digests)


def check_record_options(steps: int, ops_at: Iterable[int], learning_rate: float | None, seed: int,
                         threads: int | None) -> tuple[int, ...]:
    """Raise ArgumentError in one line for a value ``record`` does not take; the op steps, sorted."""
    import os

    require(1 <= steps <= MAX_RECORD_STEPS, f"--steps {steps} is not accepted; use 1 to {MAX_RECORD_STEPS}")
    chosen = tuple(sorted(set(ops_at)))
    bad = [step for step in chosen if not 1 <= step <= steps]
    require(not bad, f"--ops-at {','.join(map(str, bad))} is not accepted; use steps from 1 to {steps} "
                     "(the record's --steps), or none")
    require(learning_rate is None or (math.isfinite(learning_rate) and learning_rate > 0),
            f"--lr {learning_rate} is not accepted; use a learning rate above 0")
    require(0 <= seed < 2**32, f"--seed {seed} is not accepted; use an integer from 0 to {2**32 - 1:,}")
    cpus = os.cpu_count() or 1
    require(threads is None or 1 <= threads <= cpus, f"--threads {threads} is not accepted; use 1 to {cpus}")
    return chosen


def make_record(request: WorkloadRequest | None = None, mode: str = "deterministic", gpu: str | None = "auto",
                steps: int = DEFAULT_RECORD_STEPS, seed: int = 0, learning_rate: float | None = None,
                ops_at: Iterable[int] | None = None, threads: int | None = None, timeout_s: float = RUN_TIMEOUT_S,
                on_progress: Callable[[str], None] | None = None) -> Record:
    """Train ``request``'s workload for ``steps`` steps in ``mode`` from ``seed`` in a fresh process
    (the optimizer at ``learning_rate`` instead of its own when given; ``threads`` CPU threads,
    detprof's default 1) and return its record; each step of ``ops_at`` is recorded op by op in a
    further process (None: step 1, or none for a compiled workload, whose ops Inductor replaces).
    Bad values raise ArgumentError before anything runs."""
    from detprof.check.run import require_timeout, side_spec
    from detprof.gpus import select_device
    from detprof.runner.config import CPU_THREADS
    from detprof.workload import build_workload

    backend = backend_for("pytorch")
    compiled = bool(request and request.compiled)
    op_steps = check_record_options(steps, ((), (1,))[not compiled] if ops_at is None else ops_at, learning_rate,
                                    seed, threads)
    require_timeout(timeout_s)
    backend.check_modes([mode], "--mode")
    device = select_device(gpu)
    workload = build_workload(request or WorkloadRequest(), device, backend.name)
    require(not (op_steps and workload.compiled), "--ops-at records the eager ops of a step, which compiled "
                                                  "code replaces with Inductor's kernels; add --ops-at none or drop "
                                                  "--compile")
    spec = side_spec(workload, mode, device, threads or CPU_THREADS, seed, steps, backend.name,
                      digest=DIGEST_SCHEME, learning_rate=learning_rate, record=True,
                      inductor_fallback_random=workload.compiled)
    uuid = device.gpu.uuid if device.gpu else None
    if on_progress:
        on_progress(f"recording {steps} step(s) of {workload.describe()} on {device.name} ({mode} mode)")
    run = backend.run_check_side(spec, uuid, timeout_s)
    ops: dict[str, list[dict[str, Any]]] = {}
    for step in op_steps:
        if on_progress:
            on_progress(f"recording every op of step {step} in a new process")
        recorded = backend.run_check_side(spec.but(entry="record_ops_at_step", locate_step=step, record=False),
                                          uuid, timeout_s)
        ops[str(step)] = recorded["ops"]
    rates = run.get("learning_rate") or []
    configuration = {"mode": mode, "seed": seed, "steps": steps,
                     "learning_rate": rates[0] if len(set(rates)) == 1 else rates,
                     "learning_rate_given": learning_rate is not None, "device": device.kind,
                     "device_name": run["device"], "threads": run["threads"], "compiled": workload.compiled,
                     "ops_at": list(op_steps)}
    return new_record(framework=backend.name, workload=workload.as_dict(), configuration=configuration,
                      digest_scheme=DIGEST_SCHEME, parameters=run["parameters"], buffers=run.get("buffers") or [],
                      initial=run.get("initial"), steps=run["steps"], ops=ops, ulp_control=run.get("ulp_control"),
                      nondeterministic_ops=run.get("nondeterministic_ops") or [],
                      environment=run.get("environment") or {})


DEFAULT_SCRIPT_HASH_SEED = "0"  # PYTHONHASHSEED of a script's record when the environment fixes none


def make_script_record(script: str, arguments: Sequence[str] = (), steps: int = DEFAULT_RECORD_STEPS,
                       mode: str | None = None, threads: int | None = None, ops_at: Iterable[int] = (1,),
                       timeout_s: float = RUN_TIMEOUT_S,
                       on_progress: Callable[[str], None] | None = None) -> Record:
    """Run ``script`` with ``arguments`` in a new interpreter, watched as ``check --script`` watches it,
    up to ``steps`` optimizer steps, and return its record; each step of ``ops_at`` is recorded op by
    op in a further run. ``mode`` applies a mode's switches first (None: the script's own);
    ``threads`` sets its CPU threads before it starts (None: what it sets). PYTHONHASHSEED is the
    environment's, or DEFAULT_SCRIPT_HASH_SEED, the same for every record. A record of a script is
    of its file's name: its arguments are part of how it ran, so records with other arguments compare."""
    import os
    from pathlib import Path

    from detprof.check.run import require_timeout
    from detprof.check.script import check_script_path, run_watched
    from detprof.check.spec import ScriptSideSpec
    from detprof.parse import is_whole_number

    backend = backend_for("pytorch")
    path = check_script_path(script)
    op_steps = check_record_options(steps, ops_at, None, 0, threads)
    require_timeout(timeout_s)
    if mode is not None:
        backend.check_modes([mode], "--mode")
    fixed = os.environ.get("PYTHONHASHSEED", "").strip()
    seed = fixed if is_whole_number(fixed) else DEFAULT_SCRIPT_HASH_SEED
    side = ScriptSideSpec(str(path), tuple(arguments), steps, mode, threads, seed, record=True)
    if on_progress:
        on_progress(f"recording up to {steps} optimizer step(s) of {Path(script).name} (PYTHONHASHSEED={seed})")
    run = run_watched(backend, side, "A", script, timeout_s)
    ops: dict[str, list[dict[str, Any]]] = {}
    for step in op_steps:
        if step > len(run["steps"]):
            continue  # the script stopped sooner: there is no such step to record
        if on_progress:
            on_progress(f"recording every op of step {step} in a new run")
        ops[str(step)] = run_watched(backend, replace(side, locate_step=step), "A", script, timeout_s)["ops"]
    device = str(run.get("device") or "cpu")
    configuration = {"mode": mode or "as-is", "seed": None, "steps": len(run["steps"]), "learning_rate": None,
                     "learning_rate_given": False, "device": "cpu" if device == "cpu" else "cuda",
                     "device_name": device, "threads": run.get("threads"), "compiled": False,
                     "ops_at": sorted(int(k) for k in ops), "arguments": list(arguments), "pythonhashseed": seed,
                     "steps_asked": steps, "ended": run.get("ended")}
    return new_record(framework=backend.name, workload={"arch": Path(script).name, "script": Path(script).name},
                      configuration=configuration, digest_scheme=str(run.get("scheme") or DIGEST_SCHEME),
                      parameters=run["parameters"], buffers=run.get("buffers") or [], initial=run.get("initial"),
                      steps=run["steps"], ops=ops, ulp_control=run.get("ulp_control"), nondeterministic_ops=[],
                      environment=run.get("environment") or {})
