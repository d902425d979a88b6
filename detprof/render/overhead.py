"""The overhead documents for people: a measurement's plan (on stderr, before it runs), its result,
and an ablation's table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from detprof.documents import AblationDocument, OverheadDocument
from detprof.render.console import err, out
from detprof.render.tables import bitwise, duration, fmt, grid, interval, kernel_cell, mib
from detprof.runner.coverage import COVERAGE_BAND


def plan(config: Any, device: Any, console: Console = err) -> None:
    """One line saying what an OverheadConfig will run on a DeviceChoice, before it starts."""
    w, p = config.workload, config.protocol
    if not p.adaptive:
        pairs = f"{p.repeats} pairs of processes"
    else:
        pairs = f"pairs of processes until the ratio's CI is within ±{100 * p.precision:g}% (from {p.repeats} pairs)"
        if p.max_time_s is not None:
            pairs += f" or the next pair would pass {duration(p.max_time_s)} (from {p.budget_floor} pairs)"
    line = (f"{w.describe()}; {p.warmup_steps} warm-up + {p.timed_steps} timed steps per process, {pairs}; "
            f"{p.profile_steps} profiled steps")
    if device.kind == "cpu":
        line += f"; CPU, {p.cpu_threads or 'default'} thread(s). {_cpu_defaults_note(w)}"
    else:
        line += f"; GPU {device.gpu.index} ({device.name}, {device.gpu.uuid or 'no UUID'})"
        if device.gpu.source != "nvml":
            line += ". NVML is unavailable: clocks, temperature and throttling are not monitored"
    console.print(line, highlight=False)


def _cpu_defaults_note(workload: Any) -> str:
    """How the CPU defaults compare with a GPU's: the language models' own GPU sizes, else the paper's."""
    from detprof.workload import TOKEN_KINDS, default_workload
    from detprof.workload.resolve import CPU_BATCH_SIZE, GPU_BATCH_SIZE

    if workload.workload_ref:
        return (f"CPU defaults are smaller than on a GPU (batch {CPU_BATCH_SIZE} against {GPU_BATCH_SIZE}, 100 steps); "
                "your workload sets its own input sizes")
    if workload.kind in TOKEN_KINDS and not workload.model_ref:
        gpu = default_workload(workload.arch, on_gpu=True)
        return (f"CPU defaults are smaller than on a GPU ({gpu.sequence_length:,} tokens, batch "
                f"{gpu.batch_size})")
    return "CPU defaults are smaller than the paper's GPU setting (224x224, batch 64, 100 steps)"


def kernel_ratio_phrase(doc: OverheadDocument) -> str:
    """The kernel-time ratio as far as the data support it: with its paired CI, without a CI when
    too few pairs were profiled, and not at all when the kernel times do not stand for the timed
    steps (``kernel_times_note`` then says why)."""
    ratio = doc.get("kernel_ratio")
    if ratio is None:
        return "kernel time not measured"
    if doc.get("kernel_times_reliable") is False:
        return "kernel time ratio not stated (kernel times unreliable, below)"
    ci = doc.get("kernel_ratio_ci")
    pairs = doc.get("kernel_ratio_pairs", 0)
    shown = f"95% CI {interval(ci)}" if ci else f"no CI: {pairs} profiled pair{'s' * (pairs != 1)}"
    return f"kernel time x{ratio:.3f} ({shown})"


def coverage_line(doc: OverheadDocument) -> str | None:
    """What the coverage column measured, and how much the profiler slowed the steps it measured;
    None when no mode was profiled."""
    modes = [m for m in doc["modes"] if m.get("kernel_coverage") is not None]
    if not modes:
        return None
    line = "coverage is kernel time over the profiled steps' own wall time"
    slowed = [(m["mode"], m.get("profiler_slowdown")) for m in modes if m.get("profiler_slowdown")]
    if slowed:
        line += " (profiled over timed step: " + ", ".join(f"x{value:.2f} in {mode}" for mode, value in slowed) + ")"
    short = [m for m in modes if (m["kernel_coverage"] or 0.0) < COVERAGE_BAND[0]]
    if short:
        place = "Python between ops" if doc["device"]["kind"] == "cpu" else "launches and idle device time"
        line += (f"; under {100 * COVERAGE_BAND[0]:.0f}%, the rest is host time ({place}), which the kernel ratio "
                 "leaves out")
    return line


def _precision_line(precision: dict[str, Any]) -> str:
    from detprof.stats import plus_minus  # with numpy and scipy: not for the commands that print no run

    achieved = precision["achieved"]
    shown = "none" if achieved is None else plus_minus(achieved)
    state = "reached" if precision["reached"] else f"not reached (stopped by {precision['stopped_by']})"
    line = (f"precision: target ±{100 * precision['target']:g}% {state}; achieved {shown} with "
            f"{precision['pairs']} pairs in {precision['elapsed_s']:.0f} s (± is the 95% CI's half-width over "
            "the ratio)")
    if precision.get("pairs_needed"):
        line += (f"; at the spread measured, about {precision['pairs_needed']:,} pairs (~"
                 f"{duration(precision['seconds_needed'])}) would reach the target: raise --max-time for that")
    return line


def overhead(doc: OverheadDocument, console: Console = out) -> None:
    """An overhead document (``overhead --json``): verdict, per-mode table, ratios, and what to doubt."""
    console.print(doc["verdict"], highlight=False)
    rows = []
    for m in doc["modes"]:
        noisy = " (noisy)" if m["noisy"] else ""
        rows.append([m["mode"], fmt(m["step_ms"]) + noisy, fmt(m["step_ms_iqr"]), fmt(m["kernel_ms"]),
                     fmt(None if m["kernel_coverage"] is None else 100 * m["kernel_coverage"], 0, "%"),
                     mib(m["peak_mem_bytes"]), f"{m['repeats_ok']}/{m['repeats_ok'] + m['repeats_failed']}",
                     bitwise(m)])
    console.print(grid(f"run {doc['run_id']}: {doc['arch']} on {doc['device']['name']}",
                       ["mode", "step ms (median)", "IQR ms", "kernel ms/step", "coverage", "peak memory",
                        "repeats ok", "final weights"], rows, text={0, 7}, console=console))
    for m in doc["modes"]:
        ops = m["nondeterministic_ops"]
        console.print(f"determinism of {m['mode']}: {m['determinism']}" + (f" ({', '.join(ops)} warned)" if ops
                                                                          else ""), highlight=False)
    observed = [(m["mode"], m.get("attention_backends")) for m in doc["modes"] if m.get("attention_backends")]
    if observed:
        console.print("attention (SDPA) backend that ran: " + "; ".join(
            f"{mode} {', '.join(backends or [])}" for mode, backends in observed), highlight=False)
    names = [m["mode"] for m in doc["modes"]]
    if doc["ratio"] is not None:
        ci = doc["ratio_ci"]
        shown = f"95% CI {interval(ci)}" if ci else doc["ratio_ci_reason"]
        memory = f", peak memory x{doc['memory_ratio']:.3f}" if doc.get("memory_ratio") is not None else ""
        console.print(f"{names[1]} / {names[0]}: step time x{doc['ratio']:.3f} ({shown}; {doc['ratio_pairs']} "
                      f"pairs), {kernel_ratio_phrase(doc)}{memory}", highlight=False)
    if doc.get("partial"):
        console.print(f"[yellow]partial: the measurement was stopped before it finished; these are its "
                      f"{doc['ratio_pairs']} finished pairs[/]", highlight=False)
    if doc.get("kernel_times_note"):
        console.print(f"[yellow]{doc['kernel_times_note']}[/]", highlight=False)
    elif (coverage := coverage_line(doc)) is not None:
        console.print(coverage, highlight=False)
    precision = doc.get("precision") or {}
    if precision.get("target"):
        console.print(_precision_line(precision), highlight=False)
    for m in doc["modes"]:
        if m.get("kernel_ms_reason") and m["kernel_ms"] is None and m["repeats_ok"]:
            console.print(f"[yellow]{m['mode']}: no kernel time:[/] {m['kernel_ms_reason']}", highlight=False)
    for failure in doc["failed_jobs"]:
        console.print(f"[yellow]job {failure['mode']} r{failure['repeat']} {failure['status']}:[/] "
                      f"{(failure['error'] or '')[:300]}", highlight=False)
    if doc["noisy"]:
        console.print("[yellow]noisy: step times vary by more than 10% (IQR/median) within at least one mode; the "
                      "CI above accounts for it, and more --steps per process narrow it[/]")
    if doc.get("takeaway"):
        console.print(f"[bold]{escape(doc['takeaway'])}[/]", highlight=False)


def ablation(d: AblationDocument, console: Console = out) -> None:
    """An ablation document (``overhead --ablate --json``): each switch against default."""
    rows = []
    for r in d["steps"]:
        rows.append([r["mode"], fmt(r["ratio"], 3), interval(r["ratio_ci"]),
                     kernel_cell(r["kernel_ratio"], r.get("kernel_times_reliable")), fmt(r["memory_ratio"], 3),
                     mib(r["peak_mem_bytes"][1]), str(r["run_id"])])
    console.print(grid(f"ablation: {d['arch']} on {d['device']['name']}, each mode against default in paired "
                       "processes", ["mode", "step time ratio", "95% CI", "kernel ratio", "memory ratio",
                                     "peak memory", "run"], rows, console=console))
    for r in d["steps"]:
        console.print(f"{r['mode']} ({r['changes']}): {r['verdict']}", highlight=False)
    reasons: dict[str, list[str]] = {}
    for skipped in d["skipped"]:
        reasons.setdefault(skipped.get("reason") or "cuDNN, cuBLAS and TF32 exist only on a GPU", []).append(
            skipped["mode"])
    for reason, modes in reasons.items():
        console.print(f"not measured here ({reason}): {'; '.join(modes)}", highlight=False)


def ablation_plan(comparisons: int, skipped: int, console: Console = err) -> None:
    """The line an ablation starts with: how many comparisons, and what a CPU skips."""
    console.print(f"ablation: {comparisons} comparisons against default, one after the other"
                  + (f"; {skipped} switches skipped, as they change nothing here (listed at the end)" if skipped
                     else ""), highlight=False)
