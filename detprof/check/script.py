"""``detprof check --script train.py [-- ARGS]``: is the user's own training script bitwise
reproducible? Two runs of it, each in a new interpreter with the same environment, watched through
torch's global optimizer step hooks (detprof.backends.torch.script), compared step by step as the
zoo's checks are (detprof.check.compare).

The script runs as it is: detprof seeds nothing in it, since an unseeded generator is exactly what
the check is there to find. Both runs get the caller's environment and working directory, with
PYTHONHASHSEED fixed when it is unset (set iteration order would otherwise differ by design), and
with ``mode`` the mode's switches applied before the script starts. Running and watching it is the
backend's (``run_script_side``); this module turns what the runs recorded into a check document.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from detprof.backends import Backend, backend_for, require_support
from detprof.check.compare import first_divergence, first_divergent_op, max_abs_diff, sensitivity
from detprof.documents import DOCUMENT_VERSION, CheckDocument, CheckSide
from detprof.errors import ArgumentError, DetprofError, require

AS_IS = "as-is"  # the script's own switches, nothing applied
DEFAULT_SCRIPT_TIMEOUT_S = 1800.0
NO_STEP = "-"  # a parameter's digest at a step before its optimizer was first stepped


class ScriptError(DetprofError):
    """A ``--script`` that cannot be checked: missing, failing, or never stepping an optimizer."""


# How each WorkloadRequest field is spelled on the command line (for the refusal naming it).
REQUEST_OPTIONS = {"arch": "--arch", "model": "--model", "workload": "--workload", "batch_size": "--batch-size",
                   "image_size": "--image-size", "input_shape": "--input-shape", "num_classes": "--num-classes",
                   "kernel_size": "--kernel-size", "batch_norm": "--bn/--no-bn", "sequence_length": "--seq-len",
                   "sdpa_backend": "--sdpa-backend", "compiled": "--compile"}


def require_script_alone(script: str | None, arguments: Sequence[str], request: Any = None, **options: Any) -> None:
    """Raise ArgumentError when script arguments come without ``--script``, or ``--script`` with an
    option of detprof's own trainings (a workload option, or one of ``options`` set: devices,
    compare, restart_at, workers, world_size, bucket_cap_mb, batch_invariance, a framework other
    than pytorch, a seed other than 0); the script decides those itself."""
    if script is None:
        raise ArgumentError(f"arguments after -- go to a --script; {shlex.join(arguments)!r} has none to go to "
                            "(give --script train.py)")
    given = [option for field, option in REQUEST_OPTIONS.items() if request is not None and getattr(request, field)]
    spelled = {"devices": "--devices", "compare": "--compare", "restart_at": "--restart-at", "workers": "--workers",
               "world_size": "--world-size", "bucket_cap_mb": "--bucket-cap-mb",
               "batch_invariance": "--batch-invariance"}
    given += [flag for name, flag in spelled.items() if options.get(name) not in (None, False)]
    if options.get("seed") not in (None, 0):
        given.append("--seed")
    require(not given, f"--script runs your script as it is; drop {', '.join(given)} (the script decides its model, "
                       "data, seeds and training; --steps, --mode, --threads and --locate-op apply)")


def check_script_path(script: str) -> Path:
    """The script's path, checked before anything runs; ScriptError naming it otherwise."""
    path = Path(script)
    if not path.is_file():
        raise ScriptError(f"--script {script!r}: no such file; give the path of a Python training script")
    return path


def _last_log_line(log_tail: str) -> str:
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def as_check_run(records: list[dict[str, Any]], label: str, script: str, log_tail: str,
                 exit_code: int | None, timed_out: bool, timeout_s: float) -> dict[str, Any]:
    """One watched run as a check run (parameters, steps, ulp_control, threads, ended); ScriptError,
    in one line with the script's last error line, when it failed or never stepped an optimizer."""
    steps = [r for r in records if "step" in r and "params" in r]
    end = next((r for r in records if "ended" in r), None)
    where = f"after step {len(steps)}" if steps else "before its first optimizer step"
    if timed_out:
        raise ScriptError(f"run {label} of --script {script!r} exceeded {timeout_s:g} s {where} and was killed")
    if end is None:
        raise ScriptError(f"run {label} of --script {script!r} ended {where} with exit {exit_code} and no word "
                          f"from detprof's hooks: {_last_log_line(log_tail)}")
    if end["ended"] == "failed":
        raise ScriptError(f"--script {script!r} failed {where} (run {label}): {end['error']}")
    if end["ended"] == "located":
        return {"ended": "located"}  # a re-run that recorded the ops of one step: its ops are what counts
    if not steps:
        raise ScriptError(f"--script {script!r} ran to its end without an optimizer step; give a training script "
                          "that calls optimizer.step() (directly, or through Lightning or a Hugging Face Trainer)")
    names: list[str] = steps[-1]["names"]
    padded = [{"loss": None, "params": s["params"] + [NO_STEP] * (len(names) - len(s["params"]))} for s in steps]
    control = steps[0].get("ulp_control")
    if control:
        control = {**control, "params": control["params"] + [NO_STEP] * (len(names) - len(control["params"]))}
    started = records[0] if records and "started" in records[0] else {}
    return {"parameters": names, "steps": padded, "ulp_control": control, "threads": started.get("threads"),
            "torch": started.get("torch"), "ended": end["ended"], "scheme": steps[0].get("scheme", "host"),
            "optimizers": 1 + max(s.get("optimizer", 0) for s in steps), "device": steps[0].get("device", "cpu")}


def _run_watched(backend: Backend, spec: dict[str, Any], label: str, script: str, folder: Path,
                 timeout_s: float) -> dict[str, Any]:
    """Run the script once, watched, its files in ``folder``; its check run, with ``state`` (name to
    numpy array) when it wrote its final parameters, or ``ops`` for a recording run."""
    watched = backend.run_script_side(spec, folder, timeout_s)
    run = as_check_run(watched["records"], label, script, watched["log_tail"], watched["exitcode"],
                       watched["timed_out"], timeout_s)
    if spec.get("locate_step"):
        if watched.get("ops") is None:
            raise ScriptError(f"run {label} of --script {script!r} ended before step {spec['locate_step']} when "
                              "re-run to record its ops; the script does not take the same steps twice")
        run["ops"] = watched["ops"]
    elif watched.get("state") is not None:
        run["state"] = watched["state"]
    run["pythonhashseed"] = watched["pythonhashseed"]
    return run


def _divergence(run_a: dict[str, Any], run_b: dict[str, Any]) -> dict[str, Any] | None:
    """first_divergence over the steps both runs took; when they agree there but one run took more
    steps, the step after the shorter one, marked ``steps_differ``."""
    shared = min(len(run_a["steps"]), len(run_b["steps"]))
    if run_a["parameters"] != run_b["parameters"]:
        return {"step": 1, "loss_differs": False, "parameter": None, "parameters_differing": 0,
                "parameters_named_differently": True}
    found = first_divergence({**run_a, "steps": run_a["steps"][:shared]}, {**run_b, "steps": run_b["steps"][:shared]})
    if found is None and len(run_a["steps"]) != len(run_b["steps"]):
        return {"step": shared + 1, "loss_differs": False, "parameter": None, "parameters_differing": 0,
                "steps_differ": [len(run_a["steps"]), len(run_b["steps"])]}
    return found


def run_script_check(script: str, arguments: Sequence[str] = (), steps: int = 10, mode: str = AS_IS,
                     threads: str | None = None, locate_op: bool = False,
                     timeout_s: float = DEFAULT_SCRIPT_TIMEOUT_S,
                     on_progress: Callable[[str], None] | None = None, framework: str | None = None) -> CheckDocument:
    """Run ``script`` with ``arguments`` twice, each in a new interpreter, and compare the parameters
    after each of its first ``steps`` optimizer steps (or all of them, when it stops sooner); the
    check document as ``check --json`` prints it, with ``script``: path, arguments, the steps each
    run took and how it ended. ``mode`` as-is runs the script with its own switches; a mode name
    applies that mode's first. ``threads`` "A,B" sets each run's CPU threads before the script
    starts (it may set its own). With ``locate_op``, both runs are re-run up to the first divergent
    step recording every op, to name the first op whose output differs while its inputs matched."""
    from detprof.check.run import parse_thread_pair, require_steps

    backend = backend_for(framework)
    require_support(backend, "script", "--script")
    path = check_script_path(script)
    require_steps(steps)
    if mode != AS_IS:
        backend.check_modes([mode], "--mode")  # an unknown mode fails here, before anything runs
    thread_pair = parse_thread_pair(threads)
    base = {"script": str(path), "arguments": list(arguments), "steps": steps,
            "mode": None if mode == AS_IS else mode}
    side_threads: list[int | None] = list(thread_pair) if thread_pair else [None, None]
    command = shlex.join([sys.executable, str(path), *arguments])
    with tempfile.TemporaryDirectory(prefix="detprof-script-") as scratch:
        runs = []
        for label, count in zip("AB", side_threads, strict=True):
            if on_progress:
                on_progress(f"run {label}: {command}, up to {steps} optimizer steps")
            runs.append(_run_watched(backend, {**base, "threads": count}, label, script, Path(scratch, label),
                                     timeout_s))
        divergence = _divergence(runs[0], runs[1])
        if divergence and locate_op and divergence.get("parameter"):
            records = []
            for label, count in zip("AB", side_threads, strict=True):
                if on_progress:
                    on_progress(f"run {label} again, recording every op of step {divergence['step']}")
                records.append(_run_watched(backend, {**base, "threads": count, "locate_step": divergence["step"]},
                                            label, script, Path(scratch, f"locate-{label}"), timeout_s))
            divergence["op"] = first_divergent_op(records[0]["ops"], records[1]["ops"])
            divergence["ops_recorded"] = len(records[0]["ops"])
    states = [run.get("state") for run in runs]
    worst = (max_abs_diff(states[0], states[1]) if states[0] is not None and states[1] is not None
             and set(states[0]) == set(states[1]) else float("inf"))
    identical = divergence is None and worst == 0.0
    sides: list[CheckSide] = [{"device": run["device"], "threads": run["threads"],
                               "nondeterministic_ops": [], "compiled": False, "inductor_deterministic": None}
                              for run in runs]
    return {"document_version": DOCUMENT_VERSION,
            "workload": {"arch": path.name, "script": str(path), "arguments": list(arguments)},
            "framework": backend.name, "mode": mode, "steps": steps, "seed": None,
            "differing_factor": "threads" if thread_pair and thread_pair[0] != thread_pair[1] else "none",
            "runs": sides, "bitwise_identical": identical, "max_abs_diff": worst, "first_divergence": divergence,
            "sensitivity": sensitivity(runs[0]),
            "script": {"path": str(path), "arguments": list(arguments),
                       "steps_taken": [len(run["steps"]) for run in runs], "ended": [run["ended"] for run in runs],
                       "optimizers": runs[0]["optimizers"], "parameters_tracked": len(runs[0]["parameters"]),
                       "pythonhashseed": runs[0]["pythonhashseed"]}}
