"""The inference grid for people (``infer --json``): one line per configuration of each row, what
the reference was, and what the comparison could see."""

from __future__ import annotations

from rich.console import Console

from detprof.check.verdict_kinds import outcome_of
from detprof.documents import InferenceCell, InferenceCostDocument, InferenceGridDocument, InferenceMismatchDocument
from detprof.render.console import out, printable
from detprof.render.tables import grid


def _first_token(cell: InferenceCell) -> str:
    first = cell["first_divergent_token"]
    if first is None:
        return "—"
    return f"{first['min']:g} / {first['median']:g}"


def _difference(cell: InferenceCell) -> str:
    text = f"{cell['max_abs_logit_diff']:.3g}"
    return text + (f" (+{cell['nonfinite_mismatches']} non-finite)" if cell["nonfinite_mismatches"] else "")


def inference(d: InferenceGridDocument, console: Console = out) -> None:
    """An inference grid document."""
    code, words = outcome_of("inference", dict(d))
    style = "green" if code == 0 else ("yellow" if code == 3 else "red")
    w, p = d["workload"], d["prompts"]
    console.print(f"{printable(str(w['source']))} ({w['class']}, {w['parameters']:,} parameters) on {d['device']}, "
                  f"{d['version']}: [{style}]{words}[/]", highlight=False)
    threads = f", {d['threads']} CPU thread(s)" if d.get("threads") else ""
    mode = f", {d['mode']} mode" if d.get("mode", "default") != "default" else ""
    console.print(f"{p['count']} prompts of {p['min_tokens']}-{p['max_tokens']} tokens ({printable(str(p['source']))}),"
                  f" {d['new_tokens']} new tokens each, greedy; reference: each prompt alone, unpadded, KV cache on, "
                  f"one prefill, sdpa, float32{threads}{mode}", highlight=False)
    rows = []
    for row in d["rows"]:
        for number, cell in enumerate(row["cells"]):
            rows.append([row["row"] if number == 0 else "", cell["label"],
                         f"{cell['identical_prompts']} / {cell['prompts']}",
                         f"{cell['bitwise_prompts']} / {cell['prompts']}", _first_token(cell), _difference(cell),
                         cell["verdict"]])
    console.print(grid("each configuration against its row's baseline (the reference unless named)",
                       ["row", "configuration", "same tokens", "bitwise logits", "first diverging token min/median",
                        "max |Δ logit|", "verdict"], rows, text={0, 1, 6}, console=console))
    for row in d["rows"]:
        for cell in row["cells"]:
            first = cell.get("first_difference") or {}
            where = f"{row['row']}, {cell['label']} (prompt {first.get('prompt')}, token {first.get('step')})"
            if "not_located" in cell:
                console.print(f"{where}: not located: {cell['not_located']}", highlight=False)
            if "op" not in cell:
                continue
            op = cell["op"]
            if op is None:
                console.print(f"{where}: no module's row differed (the difference arose outside the model's "
                              f"modules)", highlight=False)
                continue
            ops = ", ".join(op["ops"][:4]) or "no op of its own"
            if op.get("probed"):
                where += f" ({op['probed']})"
            if op["kind"] == "root-cause":
                console.print(f"{where}: {printable(op['module'])} ({op['module_type']}; {printable(ops)}): its "
                              f"output differs while its input matched", highlight=False)
                continue
            held = op.get("arose_in") or {}
            own = ", ".join(held.get("ops", [])[:5]) or "no op of its own"
            console.print(f"{where}: the first differing module, {printable(op['module'])}, was fed a row that "
                          f"already differed: it arose in {printable(str(held.get('module', '?')))}'s own ops "
                          f"({printable(own)})", highlight=False)
    baselines = [f"{row['row']}: {row['baseline']}" for row in d["rows"] if row["baseline"] != "reference"]
    if baselines:
        console.print("baselines other than the reference: " + "; ".join(baselines), highlight=False)
    for name, why in (d.get("rows_left_out") or {}).items():
        console.print(f"row left out here: {name} ({why})", highlight=False)
    if p.get("shared_prefix_tokens"):
        console.print(f"the prefix-reuse row's shared prefix: {p['shared_prefix_tokens']} seeded random tokens before "
                      f"every prompt", highlight=False)
    for row in d["rows"]:
        for cell in row["cells"]:
            if "compiled" in cell:
                made = cell["compiled"]
                console.print(f"{row['row']}, {cell['label']}: Dynamo compiled {made['graphs']} graph(s) and took "
                              f"{made['graph_breaks']} graph break(s)", highlight=False)
    switches = d.get("switches") or {}
    if switches:
        console.print("deterministic mode's switches, read back after decoding: " + ", ".join(
            f"{name} {value}" for name, value in switches.items()), highlight=False)
        warned = d.get("nondeterministic_ops") or []
        console.print("ops that warned they have no deterministic implementation: " + (", ".join(warned) or "none"),
                      highlight=False)
    replaced = d.get("replaced_ops") or {}
    if replaced:
        console.print("batch-invariant ops took over: " + ", ".join(f"{name} x{count:,}" for name, count in
                                                                     sorted(replaced.items())), highlight=False)
    control = d["sensitivity"]
    console.print(f"sensitivity: {control['what']}: {'caught' if control['caught'] else '[red]not caught[/]'}",
                  highlight=False)
    differing = d["differing_rows"]
    console.print(f"rows that differ here: {', '.join(differing)}" if differing else
                  "every row is bitwise equal here", highlight=False)


def _interval(ci: list[float | None]) -> str:
    low, high = ci
    return "—" if low is None or high is None else f"{low:.3f}-{high:.3f}"


def _anchor(anchor: dict[str, object]) -> str:
    figure = f"{anchor['percent']}%" if anchor.get("percent") is not None else f"{anchor['low']}-{anchor['high']}%"
    spread = f" ({anchor['low']}-{anchor['high']}%)" if anchor.get("percent") is not None and anchor.get("low") \
        else ""
    return f"{anchor['system']}: {anchor['metric']} {figure}{spread}; source: {anchor['source']}"


def inference_cost(d: InferenceCostDocument, console: Console = out) -> None:
    """An inference cost document (``infer --cost --json``)."""
    baseline, *treatments = d["modes"]
    w, p = d["workload"], d["prompts"]
    console.print(f"{printable(str(w['source']))} ({w['class']}, {w['parameters']:,} parameters) on {d['device']}, "
                  f"{d['version']}: {' and '.join(treatments)} against {baseline}", highlight=False)
    threads = f", {d['threads']} CPU thread(s)" if d.get("threads") else ""
    console.print(f"each batch: prompts of {p['min_tokens']}-{p['max_tokens']} tokens, {d['new_tokens']} new tokens, "
                  f"greedy, decoded once to warm up then timed step by step; rounds of fresh processes, one per mode, "
                  f"the order rotated each round{threads}", highlight=False)
    rows = []
    for row in d["rows"]:
        treatment = row.get("treatment", treatments[0])
        base, treat = row["modes"][baseline], row["modes"][treatment]
        rows.append([str(row["batch_size"]), treatment, str(row["pairs"]), f"{base['decode_tokens_per_s']:,.1f}",
                     f"{treat['decode_tokens_per_s']:,.1f}", f"x{row['decode_ratio']:.3f}",
                     _interval(row["decode_ci"]), f"{row['decode_throughput_cost_percent']:.1f}%",
                     f"x{row['prefill_ratio']:.3f}", _interval(row["prefill_ci"])])
    console.print(grid(f"each mode / {baseline}: decode step time (median per process) and prefill time",
                       ["batch", "mode", "rounds", f"{baseline} decode tok/s", "mode decode tok/s", "decode x",
                        "95% CI", "throughput lost", "prefill x", "95% CI"], rows, text={1}, console=console))
    console.print("published costs of batch-invariant inference (GPU serving systems, not measured here):",
                  highlight=False)
    for anchor in d["anchors"]:
        console.print(f"  {_anchor(anchor)}", highlight=False)


def _changes(changes: dict[str, object]) -> str:
    return ", ".join(f"{name}={value}" for name, value in changes.items()) or "the reference"


def inference_mismatch(d: InferenceMismatchDocument, console: Console = out) -> None:
    """A sampler-against-trainer document (``infer --compare sampler,trainer --json``)."""
    code, words = outcome_of("inference-mismatch", dict(d))
    w, p = d["workload"], d["prompts"]
    console.print(f"{printable(str(w['source']))} ({w['class']}, {w['parameters']:,} parameters) on {d['device']}, "
                  f"{d['version']}: [{'green' if code == 0 else 'red'}]{words}[/]", highlight=False)
    given = d["pairs"][0]
    console.print(f"{p['count']} prompts of {p['min_tokens']}-{p['max_tokens']} tokens, {d['new_tokens']} tokens "
                  f"sampled at temperature {d['temperature']:g}; sampler {_changes(given['sampler'])}; trainer "
                  f"{_changes(given['trainer'])}; log-probs from float32 logits, in float64", highlight=False)
    rows = [[row["remedy"], "yes" if row["bitwise_equal"] else "no",
             f"{100 * row['equal_token_share']:.0f}%" if "equal_token_share" in row else "—",
             f"{row['max_abs_logprob_diff']:.3g}",
             f"{row['p99_abs_logprob_diff']:.3g}", f"{row['mean_abs_logprob_diff']:.3g}",
             f"{row['sequence_kl_estimate']:.3g}", f"{100 * row['ratio_outside_share']:.1f}%",
             f"x{row['time_ratio']:.2f}" if row.get("time_ratio") else "—"] for row in d["pairs"]]
    console.print(grid(f"sampler against trainer on the sampler's {given['tokens']} tokens",
                       ["pair", "bitwise", "tokens equal", "max |Δ logp|", "p99", "mean", "KL est.",
                        f"ratio outside 1±{d['ratio_threshold']:g}", "time x"], rows, console=console))
    console.print(f"ranked (least mismatch, then least time): {'; '.join(d['ranked'])}", highlight=False)
    console.print("time x: both sides' time in one process each, over the first pair's (not a paired interval)",
                  highlight=False)
