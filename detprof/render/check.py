"""Reproducibility documents for people: a check, a batch-invariance check, an audit and advice."""

from __future__ import annotations

import shlex
from typing import Any

from rich.console import Console

from detprof.check.gates import GATES, describe_factor
from detprof.documents import (
    IDENTICAL,
    INCONCLUSIVE,
    NOT_IDENTICAL,
    AdviseDocument,
    AuditDocument,
    BatchInvarianceDocument,
    CheckDocument,
    ratio_bounds,
)
from detprof.render.console import out, printable
from detprof.render.tables import fmt, grid, interval

OP_MEANINGS = {"root-cause": "its output differs while its inputs matched",
               "input-differs": "first op fed a value that differs, made outside PyTorch's ops",
               "different-length": "the runs dispatched different numbers of ops"}
TARGET_WORDS = {"under": "under", "over": "over", "unresolved": "not resolved against", "unknown": "unknown against"}


def _divergence_rows(div: dict[str, Any], script: bool = False) -> list[list[str]]:
    loss = f" (loss {'differs' if div['loss_differs'] else 'equal'})"
    step = "0: the weights already differ before the first step" if div["step"] == 0 else f"{div['step']}{loss}"
    rows = [["first divergent step", step],
            ["first parameter", f"{div['parameter'] or '—'} (module order; {div['parameters_differing']} "
                                "differ at that step)"]]
    if div.get("buffer"):
        rows.append(["first buffer", f"{div['buffer']} ({div['buffers_differing']} buffer(s) differ at that "
                                     "step)"])
    if div["step"] == 0:
        rows.append(["before training", "the runs built or loaded different weights (an unseeded initialization, "
                                        "say); no training step is to blame, so no op is recorded"])
    if div.get("steps_differ"):
        rows.append(["optimizer steps", "the runs took different numbers of steps: "
                                        + " vs ".join(map(str, div["steps_differ"]))])
    if div.get("parameters_named_differently"):
        rows.append(["parameters", "the runs stepped different parameters (their names differ)"])
    op = div.get("op")
    if op:
        where = f"{op['op'] or '—'} in {op['module'] or '(no module)'}, {op['phase']}, op " \
                f"{op['index'] + 1} of {div['ops_recorded']}"
        meaning = OP_MEANINGS.get(op["kind"]) or f"the runs dispatched different ops here ({op.get('other_op')})"
        if op.get("random"):
            meaning = ("a random op whose inputs matched while its output differs: its generator's state differed "
                       "(seeded otherwise, or not at all)")
        rows.append(["first divergent op", f"{where}: {meaning}"])
        if op.get("source"):
            rows.append(["in the script", str(op["source"])])
    elif "op" in div:
        rows.append(["first divergent op", "none: every op of the step matched, so the difference comes from "
                                           "outside the dispatcher"])
    return rows


def _watched(script: dict[str, Any]) -> str:
    """What a script's steps were watched through: its optimizers, or the models it marked."""
    keys = script.get("watched") or []
    marked = sum(1 for key in keys if "detprof.step" in key)
    optimizers = script["optimizers"] - marked
    parts = ([f"{optimizers} optimizer(s)"] if optimizers else []) + \
        ([f"{marked} model(s) marked with detprof.step"] if marked else [])
    return " and ".join(parts) or f"{script['optimizers']} optimizer(s)"


def _when_hashed(script: dict[str, Any]) -> str:
    """A marked model is first seen after its first step; an optimizer's tensors before it too."""
    marked_only = all("detprof.step" in key for key in script.get("watched") or [])
    return ", after every step" if marked_only else ", before the first step and after every step"


def _script_rows(script: dict[str, Any], steps: int) -> list[list[str]]:
    taken = script["steps_taken"]
    ended = {"steps": f"stopped at --steps {steps}", "returned": "the script ended by itself"}
    how = " / ".join(sorted({ended.get(e, e) for e in script["ended"]}))
    counted = f"{taken[0]} in each run" if taken[0] == taken[1] else f"run A {taken[0]}, run B {taken[1]}"
    rows = [["script", str(shlex.join([script["path"], *script["arguments"]]))],
            ["optimizer steps compared", f"{counted} ({how})"],
            ["tensors hashed", f"{script['parameters_tracked']} parameters of {_watched(script)}"
                               + (f" and {script['buffers_tracked']} buffers" if script.get("buffers_tracked") else "")
                               + _when_hashed(script) + ", with the loss"]]
    seeds = script.get("pythonhashseeds") or [script["pythonhashseed"]] * 2
    rows.append(["PYTHONHASHSEED", f"{seeds[0]} in both runs (yours)" if seeds[0] == seeds[1] else
                 f"{seeds[0]} vs {seeds[1]}: each run draws its own, as two launches would (fix one to compare "
                 "runs with the same)"])
    children = script.get("child_steps") or [0, 0]
    if any(children):
        rows.append(["forked children", f"{children[0]} vs {children[1]} optimizer steps taken in processes the "
                                        "script forked: not compared"])
    calls = sorted({call for run in script.get("switch_calls") or [] for call in run})
    if calls:
        shown = ", ".join(calls[:4]) + (", ..." if len(calls) > 4 else "")
        rows.append(["the script's own switches", str(shown)])
    return rows


VERDICT_MARKUP = {IDENTICAL: "[green]bitwise identical[/]", NOT_IDENTICAL: "[red]not identical[/]",
                  INCONCLUSIVE: "[yellow]inconclusive[/]: this check could not have seen a difference"}


def _verdict(d: CheckDocument) -> str:
    """The document's verdict (a check stored before there were three reads as its comparison)."""
    return d.get("verdict") or (IDENTICAL if d["bitwise_identical"] else NOT_IDENTICAL)


def framework_label(framework: str | None) -> str:
    """" (TensorFlow)" for a document of a framework other than the default; "" for the default's."""
    from detprof.backend import backend_for  # the backend's table, not its framework

    backend = backend_for(framework)
    return "" if backend is backend_for(None) else f" ({backend.label})"


def check(d: CheckDocument, console: Console = out) -> None:
    """A check document (``check --json``): the verdict, the largest weight difference, and where the
    two runs parted."""
    w = d["workload"]
    sides = d["runs"]
    factor = describe_factor(d)  # the gate table's words (detprof.check.gates)
    verdict = VERDICT_MARKUP[_verdict(d)]
    compiled = ", compiled" if w.get("compiled") and d["differing_factor"] != "compile" else ""
    processes = "2 runs (B in two processes)" if d["differing_factor"] == "restart" else "2 fresh processes"
    script = d.get("script")
    title = f"script {shlex.join([w['arch'], *script['arguments']])}" if script else w["arch"]
    title += framework_label(d.get("framework"))
    plural = "" if d["steps"] == 1 else "s"
    steps = f"up to {d['steps']} optimizer step{plural}" if script else f"{d['steps']} step{plural}"
    console.print(f"{printable(title)}{compiled}, mode {d['mode']}, {steps} x {processes}, {factor}: "
                  f"{verdict}", highlight=False)
    rows = [["bitwise identical", "yes" if d["bitwise_identical"] else "no"],
            ["max |weight difference|", f"{d['max_abs_diff']:.3g} ("
                                        + ("every parameter an optimizer steps" if d.get("script") else
                                           "all parameters and buffers") + ", last step)"]]
    if script:
        rows += _script_rows(script, d["steps"])
    if d["first_divergence"]:
        rows += _divergence_rows(d["first_divergence"], bool(script))
    for gate in GATES:  # what each gate's outcome means, in the table's words
        rows += gate.explain(d)
    for reason in d.get("verdict_reasons") or []:
        rows.append(["inconclusive: why" if _verdict(d) == INCONCLUSIVE else "also", str(reason)])
    control = d.get("sensitivity")
    rows.append(["sensitivity", "not recorded by this run" if not control else
                 f"a 1-ulp change at step 1 is detected ({control['parameter']})" if control["detected"] else
                 f"a 1-ulp change at step 1 is NOT detected ({control['parameter']}): this check could not have "
                 "seen it"])
    inductor = [side.get("inductor_deterministic") for side in sides if side.get("compiled")]
    if inductor:
        rows.append(["Inductor deterministic switch", "not in this torch" if inductor[0] is None else
                     ("on" if inductor[0] else "off") + " (torch._inductor.config.deterministic)"])
    if d["differing_factor"] == "compile" and not d["bitwise_identical"]:
        rows.append(["eager vs compiled", "compiled code may legitimately differ from eager in low bits: Inductor "
                                          "fuses and reorders floating-point operations (dropout drew alike: "
                                          "Inductor's fallback_random was on)"])
    warned = sorted({op for side in sides for op in side["nondeterministic_ops"]})
    if warned:
        rows.append(["no deterministic implementation", ", ".join(warned)])
    console.print(grid("check", ["measure", "value"], rows, text={0, 1}, console=console))


def batch_invariance(d: BatchInvarianceDocument, console: Console = out) -> None:
    """A batch-invariance document (``check --batch-invariance --json``)."""
    verdict = "[green]batch invariant[/]" if d["batch_invariant"] else "[red]not batch invariant[/]"
    console.print(f"{printable(d['workload']['arch'])}, mode {d['mode']}, eval outputs on {d['device']}: {verdict}",
                  highlight=False)
    rows = [[str(r["batch_size"]), f"{r['bitwise_equal']} / {r['examples']}", f"{100 * r['fraction_equal']:.1f}%",
             f"{r['max_abs_diff']:.3g}"] for r in d["rows"]]
    console.print(grid("outputs against batch size 1", ["batch size", "bitwise equal", "fraction",
                                                        "max |difference|"], rows, console=console))


def audit(d: AuditDocument, console: Console = out) -> None:
    """An audit document (``audit --json``): the ops without a deterministic implementation, by module
    and pass, and the kernels deterministic mode swaps."""
    w = d["workload"]
    off = d.get("switched_off")
    verdict = ("[green]can train fully deterministically[/]" if d["fully_deterministic"] else
               "[red]its step turns deterministic algorithms off[/]" if off and not d["nondeterministic_ops"] else
               f"[red]{len(d['nondeterministic_ops'])} op(s) without a deterministic implementation[/]")
    count = d.get("steps_audited", 1)
    steps = "one training step" if count == 1 else f"{count} training steps"
    ops = sum(d.get("ops_per_step") or [d["ops_in_step"]])
    console.print(f"{printable(w['arch'])} on {d['device']}, {steps} ({ops:,} ops): {verdict}", highlight=False)
    if off:
        console.print(f"the code under audit turned deterministic algorithms off: first at op {off['index'] + 1} "
                      f"({printable(off['op'])} in {printable(off['module'] or '(no module)')}, {off['phase']}, step "
                      f"{off['step']}); every op was still asked with the switch on", highlight=False)
    if d["fully_deterministic"]:
        console.print(f"covers the ops of {steps}: an op the training first takes later is not covered (raise "
                      "--steps)", highlight=False)
    if d["nondeterministic_ops"]:
        rows = [[str(o["op"]), str(site["count"]), str(site["module"]), site["phase"],
                 ", ".join(o["dispatched_as"])] for o in d["nondeterministic_ops"] for site in o["sites"]]
        console.print(grid("ops with no deterministic implementation here (one row per module and pass)",
                           ["op", "calls", "module", "pass", "dispatched as"], rows, text={0, 2, 3, 4},
                           console=console))
    if d["swapped_kernels"]:
        rows = [[str(r["name"]), r["status"], str(r["calls_a"]), str(r["calls_b"]),
                 fmt(r["total_us_a"], 1, grouped=True), fmt(r["total_us_b"], 1, grouped=True)]
                for r in d["swapped_kernels"]]
        console.print(grid("kernels deterministic mode adds, drops or calls differently (one profiled step each, µs)",
                           ["kernel", "status", "calls default", "calls det.", "µs default", "µs det."], rows,
                           text={0, 1}, console=console))
    elif not d["kernel_diff_available"]:
        console.print("no kernel diff: the profiled step of a mode failed", highlight=False)
    else:
        console.print("deterministic mode swaps no kernel here (the same kernels, the same call counts)",
                      highlight=False)


def _candidate_row(r: dict[str, Any]) -> list[str]:
    measured = r["ratio"] is not None and r["mode"] != "default"
    verdict = "yes" if r["bitwise_identical"] else \
        f"not run here: {r['error']}" if r.get("error") else \
        f"inconclusive: {r['check_reasons'][0]}" if r.get("check_verdict") == INCONCLUSIVE else \
        f"no (step {r['first_divergent_step']})"
    return [r.get("label", r["mode"]), verdict,
            fmt(r["ratio"], 3) if r["bitwise_identical"] else "—",
            interval(r["ratio_ci"], "by definition" if r["mode"] == "default" else "—"),
            fmt(r["memory_ratio"], 3) if r["bitwise_identical"] else "—", str(r["run_id"]) if measured else "—"]


def _cost(row: dict[str, Any], inner: bool = False) -> str:
    """``x1.068 (95% CI 1.01-1.12)``, or inside parentheses (``inner``) ``x1.068, 95% CI 1.01-1.12``:
    a candidate's step-time ratio against default."""
    if not row.get("ratio_ci"):
        return f"x{row['ratio']:.3f}"
    ci = f"95% CI {interval(row['ratio_ci'])}"
    return f"x{row['ratio']:.3f}, {ci}" if inner else f"x{row['ratio']:.3f} ({ci})"


def standing(chosen: dict[str, Any], candidates: list[dict[str, Any]]) -> str:
    """How the chosen candidate's cost compares with the other measured ones, as far as the CIs
    tell them apart: "not told apart from deterministic (x1.034 ...)" where the CIs overlap (the
    one with fewer switches is then named), "resolved cheaper than ..." where they do not."""
    label = chosen.get("label", chosen["mode"])
    others = [r for r in candidates if r["mode"] != "default" and r.get("label", r["mode"]) != label
              and r["bitwise_identical"] and r["ratio"] is not None]
    if not others:
        return ""
    low, high = ratio_bounds(chosen)
    overlapping = [r for r in others if ratio_bounds(r)[0] <= high and ratio_bounds(r)[1] >= low]
    dearer = [r for r in others if ratio_bounds(r)[0] > high]
    parts = []
    if overlapping:
        names = ", ".join(f"{r.get('label', r['mode'])} ({_cost(r, inner=True)})" for r in overlapping)
        parts.append(f"not told apart from {names}: the CIs overlap, so the candidate with fewer switches is named")
    if dearer:
        parts.append("resolved cheaper than " + ", ".join(f"{r.get('label', r['mode'])} ({_cost(r, inner=True)})"
                                                          for r in dearer))
    return "; ".join(parts)


def advice(d: AdviseDocument, console: Console = out) -> None:
    """An advise document (``advise --json``): every candidate's check and cost, the recommendation
    and the lines that set it."""
    threads = f", {d['threads']} thread(s)" if d["threads"] else ""
    console.print(grid(f"advise: {d['workload']['arch']} on {d['device']['name']}{threads}; bitwise identical over "
                       f"{d['check_steps']} steps in two fresh processes, cost against default",
                       ["candidate", "bitwise identical", "step time ratio", "95% CI", "memory ratio", "run"],
                       [_candidate_row(r) for r in d["candidates"]], text={0, 1, 3}, console=console))
    best = d["recommendation"]
    if best is None:
        console.print("[red]no candidate was bitwise identical here[/]: run `detprof audit` with the same options to "
                      "find the ops to blame", highlight=False)
        return
    target = TARGET_WORDS[best["megatron_target"]]
    compared = "" if best["mode"] == "default" else standing(best, d["candidates"])
    cost = "nothing: default training was already bitwise identical here" if best["mode"] == "default" else \
        f"{_cost(best)} step time"
    console.print(f"[bold]recommended: {best.get('label', best['mode'])}[/], cost {cost}; {target} Megatron-LM's "
                  "target of under 10% step overhead" + (f"; {compared}" if compared else ""), highlight=False)
    full = d["full_deterministic"]
    if full and full.get("label", full["mode"]) != best.get("label", best["mode"]) and full["ratio"] is not None:
        console.print(f"the full deterministic mode costs {_cost(full)} here", highlight=False)
    switched = d.get("cheapest_with_switches")
    if switched:
        compared = standing(switched, d["candidates"])
        console.print(f"default passed this check, but PyTorch promises nothing for it. With determinism switched on: "
                      f"{switched.get('label', switched['mode'])}, {_cost(switched)}"
                      + (f"; {compared}" if compared else "") + ". Set it as follows:", highlight=False)
        best = switched
    settings = best["settings"]
    if settings["environment"]:
        console.print("in the shell, before the process starts CUDA:\n  " + "\n  ".join(settings["environment"]),
                      highlight=False, markup=False, soft_wrap=True)
    console.print("in the training script, after `import torch`:\n  " + "\n  ".join(settings["python"]),
                  highlight=False, markup=False, soft_wrap=True)
