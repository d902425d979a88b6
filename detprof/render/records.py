"""Records and their comparisons for people: what a record holds, and where two records parted,
how far apart they ended, and what about how or where they were made could explain it."""

from __future__ import annotations

import shlex
from typing import Any

from rich.console import Console

from detprof.render.check import OP_MEANINGS
from detprof.render.console import out, printable
from detprof.render.tables import grid

VERDICT_MARKUP = {"equal": "[green]bitwise equal[/]", "differ": "[red]differ[/]",
                  "inconclusive": "[yellow]inconclusive[/]: this comparison could not have seen a difference"}


def _workload_line(workload: dict[str, Any]) -> str:
    if workload.get("script"):
        return f"script {workload['script']}"
    if workload.get("kind") == "inference":
        return f"{workload.get('arch')} decoding ({workload.get('source')})"
    name = workload.get("workload_ref") or workload.get("model_ref") or workload.get("arch")
    size = (f"sequence {workload['sequence_length']}" if workload.get("sequence_length")
            else f"{workload.get('image_size')}x{workload.get('image_size')}")
    return f"{name}, batch {workload.get('batch_size')}, {size}"


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "—"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    return "—" if value is None else str(value)


def _asked(field: str, value: Any) -> str:
    """A configuration value as it was given: a script's arguments as a command line."""
    if field == "arguments":
        return shlex.join(value or []) or "(none)"
    return _value(value)


def _asked_pair(row: dict[str, Any]) -> list[str]:
    """A configuration difference's two values; of two scripts' arguments, only those one run had
    and the other did not (a long command line differs in one flag, mostly)."""
    if row["field"] != "arguments":
        return [_asked(row["field"], row["a"]), _asked(row["field"], row["b"])]
    a, b = list(row["a"] or []), list(row["b"] or [])
    only_a, only_b = [x for x in a if x not in b], [x for x in b if x not in a]
    if not only_a and not only_b:  # the same arguments in another order
        return [_asked("arguments", a), _asked("arguments", b)]
    return [f"only {shlex.join(only_a)}" if only_a else "(not these)", f"only {shlex.join(only_b)}" if only_b
            else "(not these)"]


def record(d: dict[str, Any], console: Console = out) -> None:
    """A record document (``record --json``): what was recorded, in what environment, and where."""
    rec = d["record"]
    conf, env = rec["configuration"], rec["environment"]
    gpu = env.get("gpu") or {}
    decoding = rec["workload"].get("kind") == "inference"
    console.print(f"{printable(_workload_line(rec['workload']))}: recorded {len(rec['steps'])} "
                  f"{'new token' if decoding else 'step'}(s) in {conf['mode']} mode on "
                  f"{printable(str(conf['device_name']))}", highlight=False)
    last = rec["steps"][-1].get("loss") if rec["steps"] else None
    if decoding:
        prompts = conf.get("prompts") or {}
        rows = [["decoding", f"{prompts.get('count')} prompts of {prompts.get('min_tokens')}-"
                             f"{prompts.get('max_tokens')} tokens ({prompts.get('source')}), {len(rec['steps'])} new "
                             f"tokens each, {conf.get('settings')}"]]
    elif rec["workload"].get("script"):
        rows = [["arguments", _asked("arguments", conf.get("arguments"))],
                ["PYTHONHASHSEED", str(conf.get("pythonhashseed"))],
                ["steps", f"{len(rec['steps'])} optimizer step(s) of {conf.get('steps_asked')} asked; the script "
                          + {"steps": "was stopped there", "returned": "ended by itself"}.get(conf.get("ended"),
                                                                                            str(conf.get("ended")))]]
    else:
        rows = [["seed, learning rate", f"{conf['seed']}, {_value(conf['learning_rate'])}"
                                        + ("" if conf.get("learning_rate_given") else " (the workload's own)")]]
    rows += [["threads", str(conf["threads"])],
            ["digested", f"each prompt's logits at every new token ({rec['digest_scheme']})" if decoding else
             f"{len(rec['parameters'])} parameters and {len(rec['buffers'])} buffers, before the first step and "
             f"after every step ({rec['digest_scheme']} scheme)"],
            ["last loss", f"{float.fromhex(last):.9g}" if last else "—"],
            ["ops recorded", ", ".join(f"step {step}: {len(ops)} ops" for step, ops in rec.get("ops", {}).items())
             or "none (--ops-at none)"],
            ["torch", str(env.get("torch"))],
            ["device", f"{gpu.get('name')} ({gpu.get('architecture')}), CUDA {env.get('cuda')}, cuDNN "
                       f"{env.get('cudnn')}" if gpu else f"{env.get('cpu')}, ATen CPU capability "
                                                          f"{env.get('aten_cpu_capability')}"],
            ["BLAS", str(env.get("blas") or "—")]]
    if decoding:  # a decoding has no loss, and its record no op record
        rows = [row for row in rows if row[0] not in ("last loss", "ops recorded")]
    if rec.get("nondeterministic_ops"):
        rows.append(["ops without a deterministic kernel", ", ".join(rec["nondeterministic_ops"])])
    if d.get("file"):
        rows.append(["written to", str(d["file"])])
    if d.get("run_id") is not None:
        rows.append(["stored as", f"run {d['run_id']} (compare it as run:{d['run_id']})"])
    console.print(grid("record", ["what", "found"], rows, text={0, 1}, console=console))
    golden = d.get("golden")
    if golden:
        console.print(f"golden {printable(golden['file'])}: {golden['action']}", highlight=False)
        if golden.get("comparison"):
            comparison(golden["comparison"], console)


def comparison(d: dict[str, Any], console: Console = out) -> None:
    """A comparison document (``compare --json``): the verdict, the first divergence, its growth, and
    the configuration and environment differences, ranked."""
    a, b = d["labels"]
    words = WORDS[d.get("subject") or "training"]
    console.print(f"A {printable(a)} vs B {printable(b)}: {printable(_workload_line(d['workload']))}, "
                  f"{d['steps_compared']} {words['step']}(s) compared: {VERDICT_MARKUP[d['verdict']]}", highlight=False)
    for reason in d.get("verdict_reasons") or []:
        console.print(f"  {printable(reason)}", highlight=False)
    divergence = d.get("first_divergence")
    if divergence:
        rows = _divergence_rows(divergence, d.get("op_note"), words)
        console.print(grid("where they part", ["what", "found"], rows, text={0, 1}, console=console))
    if d.get("growth"):
        decoding = d.get("subject") == "decoding"
        rows = [[str(row["step"]), f"{row['parameters_differing']} of {row['parameters']}",
                 str(row.get("tokens_differing", "—")) if decoding else
                 "—" if row["loss_diff"] is None else f"{row['loss_diff']:.3g}",
                 "—" if row["weight_distance"] is None else f"{row['weight_distance']:.3g}"]
                for row in d["growth"]]
        console.print(grid(f"how far apart, {words['step']} by {words['step']} (the {words['values']}' L2 distance "
                           "estimated from their sketches, ±6%)",
                           [words["step"], f"{words['parameters']} differing",
                            "tokens differing" if decoding else "|Δ loss|", f"‖Δ {words['values']}‖"], rows,
                           text=set(), console=console))
    configuration = d.get("configuration_differences") or []
    environment = d.get("environment_differences") or []
    if configuration or environment:
        rows = [[str(rank), f"{row['field']} (configuration)", *_asked_pair(row), "what was asked"]
                for rank, row in enumerate(configuration, start=1)]
        rows += [[str(rank), row["factor"], _value(row["a"]), _value(row["b"]),
                  row["why"] + ("" if row["relevant"] else " (not this device's)")]
                 for rank, row in enumerate(environment, start=len(rows) + 1)]
        title = ("what differs in how they were made, most likely cause first" if d["verdict"] != "equal" else
                 "what differs in how they were made (it changed no bit here)")
        console.print(grid(title,
                           ["#", "factor", "A", "B", "why it matters"], rows, text={1, 2, 3, 4}, console=console))
    elif d["verdict"] == "differ":
        console.print("the records were made alike: no configuration or environment difference explains it",
                      highlight=False)


# How a comparison names its steps and what is digested at each: a training's, or a decoding's.
WORDS = {"training": {"step": "step", "parameter": "parameter", "parameters": "parameters", "values": "weights",
                      "order": "module order"},
         "decoding": {"step": "token", "parameter": "prompt", "parameters": "prompts (logits)", "values": "logits",
                      "order": "prompt order"}}


def _divergence_rows(divergence: dict[str, Any], op_note: str | None,
                     words: dict[str, str] = WORDS["training"]) -> list[list[str]]:
    if divergence.get("structure"):
        return [["models", f"their {divergence['structure']} differ ({divergence['parameter']} vs "
                           f"{divergence['other']}): the code built another model"]]
    if words is WORDS["decoding"]:
        step = f"{divergence['step']} (the logits new token {divergence['step']} was chosen from)"
    else:
        loss = "loss differs" if divergence["loss_differs"] else "loss equal"
        step = ("0: the weights differ before the first step" if divergence["step"] == 0
                else f"{divergence['step']} ({loss})")
    rows = [[f"first divergent {words['step']}", step],
            [f"first {words['parameter']}", f"{divergence['parameter'] or '—'} ({words['order']}; "
                                            f"{divergence['parameters_differing']} differ at that {words['step']})"]]
    op = divergence.get("op")
    if op:
        rows.append(["first divergent op", f"{op['op'] or '—'} in {op['module'] or '(no module)'}, {op['phase']}, "
                                           f"op {op['index'] + 1} of {divergence['ops_recorded']}: "
                                           f"{OP_MEANINGS.get(op['kind'], op['kind'])}"])
    elif "op" in divergence:
        rows.append(["first divergent op", "none: every recorded op of the step matched"])
    elif op_note:
        rows.append(["first divergent op", op_note])
    return rows
