"""``detprof check --script train.py [-- ARGS]``: is the user's own training script bitwise
reproducible? Two runs of it, each in a new interpreter with the same environment, watched through
torch's global optimizer step hooks (detprof.backends.torch.script), compared step by step as the
zoo's checks are (detprof.check.compare) and judged by detprof.check.verdict.

The script runs as it is: detprof seeds nothing in it, since an unseeded generator is exactly what
the check is there to find. Both runs get the caller's environment and working directory, each its
own PYTHONHASHSEED unless the caller fixed one (as two launches would), and with ``mode`` the
mode's switches applied before the script starts. Each run has a private folder that is gone before
the other starts. Running and watching it is the backend's (``run_script_side``); this module turns
what the runs recorded into a check document.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from detprof.backend import Backend, backend_for, require_support
from detprof.check.compare import (
    first_divergence,
    first_divergent_op,
    max_abs_diff,
    sensitivity,
    states_bitwise_equal,
)
from detprof.check.gates import Pair, given_options, settle_gates
from detprof.check.spec import ScriptSideSpec
from detprof.check.verdict import conclude_check, threads_run
from detprof.documents import DOCUMENT_VERSION, CheckDocument, CheckSide
from detprof.errors import ArgumentError, DetprofError, require
from detprof.parse import is_whole_number
from detprof.workload.request import REQUEST_OPTIONS

AS_IS = "as-is"  # the script's own switches, nothing applied
DEFAULT_SCRIPT_TIMEOUT_S = 1800.0
NO_STEP = "-"  # a parameter's digest at a step before its optimizer was first stepped


class ScriptError(DetprofError):
    """A ``--script`` that cannot be checked: missing, failing, or never stepping an optimizer."""


CHECK_SCRIPT_OPTIONS = "--steps, --mode, --threads, --timeout and --locate-op"


def require_script_alone(script: str | None, arguments: Sequence[str], request: Any = None,
                         gates: Mapping[str, Pair] | None = None, applies: str = CHECK_SCRIPT_OPTIONS,
                         **options: Any) -> None:
    """Raise ArgumentError when script arguments come without ``--script``, or ``--script`` with an
    option of detprof's own trainings (a workload option, a gate other than threads, or one of
    ``options`` set: batch_invariance, a framework other than pytorch, a seed other than 0, a gpu
    other than auto, a learning rate); the script decides those itself. ``applies`` names the
    options that do apply, for the refusal."""
    if script is None:
        raise ArgumentError(f"arguments after -- go to a --script; {shlex.join(arguments)!r} has none to go to "
                            "(give --script train.py)")
    given = [option for field, option in REQUEST_OPTIONS.items() if request is not None and getattr(request, field)]
    given += given_options(gates or {}, allowed=("threads",))
    if options.get("batch_invariance"):
        given.append("--batch-invariance")
    if options.get("seed") not in (None, 0):
        given.append("--seed")
    if options.get("gpu") not in (None, "auto"):
        given.append("--gpu")
    if options.get("lr") is not None:
        given.append("--lr")
    require(not given, f"--script runs your script as it is; drop {', '.join(given)} (the script decides its model, "
                       f"data, seeds, device and training; {applies} apply)")


def check_script_path(script: str) -> Path:
    """The script's path, checked before anything runs; ScriptError naming it otherwise."""
    path = Path(script)
    if path.is_dir():
        raise ScriptError(f"--script {script!r} is a folder; give the path of a Python training script in it")
    if not path.is_file():
        raise ScriptError(f"--script {script!r}: no such file; give the path of a Python training script")
    return path


def _last_log_line(log_tail: str) -> str:
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _slots(keys: list[str], by_key: dict[str, list[str]]) -> dict[str, list[int]]:
    """Each key's positions in the concatenation of every key's names (keys in order)."""
    slots, at = {}, 0
    for key in keys:
        slots[key] = list(range(at, at + len(by_key[key])))
        at += len(by_key[key])
    return slots


def _placed(size: int, positions: list[int], values: list[str]) -> list[str]:
    """``values`` at ``positions`` of a row of ``size``, NO_STEP elsewhere."""
    return _merged([NO_STEP] * size, positions, values)


def _merged(row: list[str], positions: list[int], values: list[str]) -> list[str]:
    merged = list(row)
    for position, value in zip(positions, values, strict=True):
        merged[position] = value
    return merged


def as_check_run(records: list[dict[str, Any]], label: str, script: str, log_tail: str,
                 exit_code: int | None, timed_out: bool, timeout_s: float) -> dict[str, Any]:
    """One watched run as a check run: its steps in one order that does not depend on how threads
    interleaved (step 1 of every optimizer in key order, then step 2, ...), each step holding its own
    optimizer's digests at their places among every tracked name (NO_STEP elsewhere); with
    ``initial``, ``ulp_control``, ``threads``, ``ended``, ``switches_set``, ``switch_calls`` and
    ``child_steps`` (steps a forked child took, not compared). ScriptError, in one line with the
    script's last error line, when it failed, never
    stepped an optimizer, or detprof refused or failed to watch it."""
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
    if end["ended"] == "refused":
        raise ScriptError(f"--script {script!r} cannot be checked (run {label}, {where}): {end['error']}")
    if end["ended"] == "watch-failed":
        raise ScriptError(f"detprof's watch of --script {script!r} failed (run {label}, {where}; a fault of "
                          f"detprof's, not of the script): {end['error']}")
    started = records[0] if records and "started" in records[0] else {}
    common = {"threads": started.get("threads"), "torch": started.get("torch"), "ended": end["ended"],
              "switches_set": started.get("switches_set"), "switch_calls": end.get("switch_calls") or [],
              "child_steps": sum(1 for r in records if "child_step" in r), "environment": end.get("environment")}
    if end["ended"] == "located":
        return common  # a re-run that recorded the ops of one step: its ops are what counts
    if not steps:
        raise ScriptError(f"--script {script!r} ran to its end without an optimizer step; give a training script "
                          "that calls optimizer.step() (directly, or through Lightning or a Hugging Face Trainer), "
                          "or mark each step of a loop that updates its weights itself with detprof.step(model)")
    keys = sorted({r["key"] for r in steps})
    names = {r["key"]: r["names"] for r in steps}
    buffer_names = {r["key"]: r.get("buffer_names") or [] for r in steps}
    slots, buffer_slots = _slots(keys, names), _slots(keys, buffer_names)
    all_names = [name for key in keys for name in names[key]]
    all_buffers = [f"{name} ({key})" if len(keys) > 1 else name for key in keys for name in buffer_names[key]]
    ordered = sorted(steps, key=lambda r: (r["step"], keys.index(r["key"])))
    placed = [{"loss": r.get("loss"), "params": _placed(len(all_names), slots[r["key"]], r["params"]),
               "buffers": _placed(len(all_buffers), buffer_slots[r["key"]], r.get("buffers") or []),
               "nonfinite": r.get("nonfinite") or [], "threads": r.get("threads"),
               **({"switches_changed": r["switches_changed"]} if r.get("switches_changed") else {}),
               **({"sketch": r["sketch"]} if r.get("sketch") else {})} for r in ordered]
    initial_records = {r["initial"]: r for r in records if "initial" in r}
    initial = {"params": [NO_STEP] * len(all_names), "buffers": [NO_STEP] * len(all_buffers)}
    for key, record in initial_records.items():
        if key in slots:
            initial["params"] = _merged(initial["params"], slots[key], record["params"])
            initial["buffers"] = _merged(initial["buffers"], buffer_slots[key], record.get("buffers") or [])
    first = next((r for r in steps if r.get("ulp_control")), None)
    control = None
    if first is not None:  # recorded on the first step taken: compared with that step where it now stands
        control = {**first["ulp_control"], "index": ordered.index(first),
                   "params": _placed(len(all_names), slots[first["key"]], first["ulp_control"]["params"])}
    return {**common, "parameters": all_names, "buffers": all_buffers, "initial": initial, "steps": placed,
            "ulp_control": control, "scheme": steps[0].get("scheme", "host"), "optimizers": len(keys),
            "keys": keys, "device": steps[0].get("device", "cpu")}


KEPT_LOGS = "detprof-logs"  # under the temporary folder: the output of a script run that could not be checked


def _keep_log(log: Path, label: str) -> Path | None:
    """A copy of a run's output that outlives its private folder; None when there is none to keep."""
    if not log.exists():
        return None
    kept = Path(tempfile.gettempdir(), KEPT_LOGS)
    kept.mkdir(exist_ok=True)
    target = kept / f"script-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-run-{label}.log"
    shutil.copyfile(log, target)
    return target


def run_watched(backend: Backend, spec: ScriptSideSpec, label: str, script: str, timeout_s: float) -> dict[str, Any]:
    """Run the script once, watched, in a private folder of its own that is gone before the next run
    starts (so that no run can read another's records); its check run, with ``state`` (name to
    numpy array) when it wrote its final parameters, or ``ops`` for a recording run."""
    with tempfile.TemporaryDirectory(prefix="detprof-script-") as scratch:
        folder = Path(scratch)
        watched = backend.run_script_side(spec, folder, timeout_s)
        if watched.get("forged"):
            raise ScriptError(f"run {label} of --script {script!r}: {watched['forged']} line(s) of its records were "
                              "not written by detprof's watch (they lack this run's secret); a check cannot vouch "
                              "for a run whose records were written to from elsewhere")
        try:
            run = as_check_run(watched["records"], label, script, watched["log_tail"], watched["exitcode"],
                               watched["timed_out"], timeout_s)
        except ScriptError as error:
            kept = _keep_log(folder / "run.log", label)
            raise ScriptError(f"{error}" + (f" (its output is kept in {kept})" if kept else "")) from None
    if spec.locate_step:
        if watched.get("ops") is None:
            raise ScriptError(f"run {label} of --script {script!r} ended before step {spec.locate_step} when "
                              "re-run to record its ops; the script does not take the same steps twice")
        run["ops"] = watched["ops"]
    elif watched.get("state") is not None:
        run["state"] = watched["state"]
    run["pythonhashseed"] = watched["pythonhashseed"]
    return run


def hash_seeds(environment: Mapping[str, str]) -> tuple[str, str]:
    """PYTHONHASHSEED for runs A and B: the caller's, when it fixes one (a number); else two distinct
    ones, as two launches of ``python train.py`` would each draw their own (so that an order that
    depends on string hashes, ``list(set(words))`` say, shows up as the difference it is)."""
    fixed = environment.get("PYTHONHASHSEED", "").strip()
    if is_whole_number(fixed):
        return fixed, fixed
    first = secrets.randbelow(2**32 - 2) + 1
    return str(first), str(first % (2**32 - 1) + 1)


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
                     threads: tuple[int, int] | None = None, locate_op: bool = False,
                     timeout_s: float = DEFAULT_SCRIPT_TIMEOUT_S,
                     on_progress: Callable[[str], None] | None = None, framework: str | None = None) -> CheckDocument:
    """Run ``script`` with ``arguments`` twice, each in a new interpreter, and compare the parameters
    after each of its first ``steps`` optimizer steps (or all of them, when it stops sooner); the
    check document as ``check --json`` prints it, with ``script``: path, arguments, the steps each
    run took and how it ended. ``mode`` as-is runs the script with its own switches; a mode name
    applies that mode's first. ``threads`` (A, B) sets each run's CPU threads before the script
    starts (it may set its own). With ``locate_op``, both runs are re-run up to the first divergent
    step recording every op, to name the first op whose output differs while its inputs matched."""
    from detprof.check.run import require_steps, require_timeout

    backend = backend_for(framework)
    require_support(backend, "script", "--script")
    path = check_script_path(script)
    require_steps(steps)
    require_timeout(timeout_s)
    if mode != AS_IS:
        backend.check_modes([mode], "--mode")  # an unknown mode fails here, before anything runs
    thread_pair = settle_gates({"threads": threads})["threads"] if threads else None  # refused as --threads is
    side_threads: list[int | None] = list(thread_pair) if thread_pair else [None, None]
    seeds = hash_seeds(os.environ)
    command = shlex.join([sys.executable, str(path), *arguments])
    runs = []
    for label, count, seed in zip("AB", side_threads, seeds, strict=True):
        if on_progress:
            on_progress(f"run {label}: {command}, up to {steps} optimizer steps, PYTHONHASHSEED={seed}")
        side = ScriptSideSpec(str(path), tuple(arguments), steps, None if mode == AS_IS else mode, count, seed)
        runs.append(run_watched(backend, side, label, script, timeout_s))
    divergence = _divergence(runs[0], runs[1])
    if divergence and locate_op and divergence.get("parameter") and divergence["step"] >= 1:
        records = []
        for label, count, seed in zip("AB", side_threads, seeds, strict=True):
            if on_progress:
                on_progress(f"run {label} again, recording every op of step {divergence['step']}")
            side = ScriptSideSpec(str(path), tuple(arguments), steps, None if mode == AS_IS else mode, count, seed,
                                  locate_step=divergence["step"])
            records.append(run_watched(backend, side, label, script, timeout_s))
        divergence["op"] = first_divergent_op(records[0]["ops"], records[1]["ops"])
        divergence["ops_recorded"] = len(records[0]["ops"])
    states = [run.get("state") for run in runs]
    both = states[0] is not None and states[1] is not None
    worst = max_abs_diff(states[0], states[1]) if both else float("inf")  # type: ignore[arg-type]
    identical = divergence is None and both and states_bitwise_equal(states[0], states[1])  # type: ignore[arg-type]
    sides: list[CheckSide] = [{"device": run["device"], "threads": run["threads"], "threads_run": threads_run(run),
                               "nondeterministic_ops": [], "compiled": False, "inductor_deterministic": None}
                              for run in runs]
    control = sensitivity(runs[0])
    verdict, reasons = conclude_check(identical, runs, control, mode, thread_pair)
    return {"document_version": DOCUMENT_VERSION,
            "workload": {"arch": path.name, "script": str(path), "arguments": list(arguments)},
            "framework": backend.name, "mode": mode, "steps": steps, "seed": None,
            "differing_factor": "threads" if thread_pair and thread_pair[0] != thread_pair[1] else "none",
            "runs": sides, "bitwise_identical": identical, "verdict": verdict, "verdict_reasons": reasons,
            "max_abs_diff": worst, "first_divergence": divergence, "sensitivity": control,
            "script": {"path": str(path), "arguments": list(arguments),
                       "steps_taken": [len(run["steps"]) for run in runs], "ended": [run["ended"] for run in runs],
                       "optimizers": runs[0]["optimizers"], "watched": runs[0]["keys"],
                       "parameters_tracked": len(runs[0]["parameters"]),
                       "buffers_tracked": len(runs[0]["buffers"]),
                       "pythonhashseed": runs[0]["pythonhashseed"],
                       "pythonhashseeds": [run["pythonhashseed"] for run in runs],
                       "child_steps": [run["child_steps"] for run in runs],
                       "switch_calls": [[call["call"] for call in run["switch_calls"]] for run in runs]}}
