"""Kernel documents for people: the top kernels of a trace or a stored run, per-call statistics, the
diff between two modes, runs or traces, and an imported trace. Times in µs in the kernel tables,
ms in the diff, as each table's headers say."""

from __future__ import annotations

from typing import Any

from rich.console import Console, RenderableType

from detprof.documents import DiffDocument, ImportDocument, RunKernelsDocument, TraceKernelsDocument
from detprof.kernels.names import signature
from detprof.render.console import out, printable
from detprof.render.tables import fmt, grid


def _rows_table(title: str, rows: list[dict[str, Any]], console: Console) -> RenderableType:
    """Kernels with calls, total, share and mean, in µs throughout (one time unit per table)."""
    cells = [[str(signature(k["name"])) + (" *" if k["nondeterministic"] else ""), k["category"],
              f"{k['calls']:,}", fmt(k["total_us"], 1, grouped=True), fmt(100 * k["share"], 1, "%"),
              fmt(k["mean_us"], 1, grouped=True)] for k in rows]
    return grid(title, ["kernel", "category", "calls", "total µs", "share", "mean µs"], cells, text={0, 1},
                console=console)


def _stats_table(rows: list[dict[str, Any]], console: Console) -> RenderableType:
    """The per-kernel statistics asked for with --stats: median, min, max and std of one call, in µs."""
    cells = [[str(signature(k["name"])), f"{k['calls']:,}", *(fmt(k[key], 1, grouped=True) for key in
                                                                   ("median_us", "min_us", "max_us", "std_us"))]
             for k in rows]
    return grid("per call (µs)", ["kernel", "calls", "median µs", "min µs", "max µs", "std µs"], cells,
                console=console)


def _kernels(title: str, rows: list[dict[str, Any]], stats: bool, console: Console) -> None:
    console.print(_rows_table(title, rows, console))
    if any(k["nondeterministic"] for k in rows):
        console.print("* catalogued as nondeterministic (atomics)")
    if stats:
        console.print(_stats_table(rows, console))


def _diff_table(title: str, rows: list[dict[str, Any]], a: str, b: str, console: Console) -> RenderableType:
    """Kernels added, removed and changed, in ms; columns A and B are named in the title."""
    cells = [[str(signature(d["name"])), d["category"], d["status"], f"{d['calls_a']:,}", f"{d['calls_b']:,}",
              fmt(d["total_us_a"] / 1000, 3, grouped=True), fmt(d["total_us_b"] / 1000, 3, grouped=True),
              fmt(d["delta_us"] / 1000, 3, grouped=True)] for d in rows]
    return grid(f"{title}; A = {a}, B = {b}", ["kernel", "category", "status", "calls A", "calls B", "ms A", "ms B",
                                              "Δ ms"], cells, text={0, 1, 2}, console=console)


def trace_report(report: TraceKernelsDocument, stats: bool = False, console: Console = out) -> None:
    """``kernels --trace FILE``: the top kernels (or CPU ops) of one trace, and its categories."""
    what = "GPU kernels and memory copies" if report["kind"] == "gpu" else "CPU ops (self time)"
    title = (f"{report['trace']}: top {report['top']} of {what}, {report['total_us'] / 1000:,.2f} ms in all"
             f" ({report['device'] or 'device not recorded'}, scope {report['scope']})")
    _kernels(title, report["kernels"], stats, console)
    console.print(grid("by category", ["category", "calls", "total µs", "share"],
                       [[c["category"], f"{c['calls']:,}", fmt(c["total_us"], 1, grouped=True),
                         fmt(100 * c["share"], 1, "%")] for c in report["categories"]], console=console))


def kernel_report(report: RunKernelsDocument, stats: bool = False, console: Console = out) -> None:
    """``kernels``: the top kernels of a stored run's mode, and what changed between its two modes."""
    title = (f"run {report['run_id']}, mode {report['mode']}: top {report['top']} kernels "
             + (f"({report['kernel_ms_per_step']:.2f} ms of kernel time per step)" if report["kernel_ms_per_step"]
                is not None else f"({report['kernel_ms_total']:.2f} ms of kernel time in the whole trace)"))
    _kernels(title, report["kernels"], stats, console)
    if report["diff"] and report["diff_modes"]:
        a, b = report["diff_modes"]
        console.print(_diff_table(f"what changed: {b} vs {a} (largest absolute change in total time first)",
                                  report["diff"], a, b, console))
    if report.get("kernel_times_note"):
        note = printable(str(report["kernel_times_note"]))
        console.print(f"[yellow]caution, this run's {note}: the kernel times above are what its profiled steps "
                      "recorded, not what the mode costs, and their differences may be noise[/]", highlight=False)


def kernel_diff(report: DiffDocument, console: Console = out) -> None:
    """``diff A B``: kernels added, removed and changed between two runs or traces."""
    counts = report["counts"]
    title = (f"{counts['added']} added, {counts['removed']} removed, {counts['changed']} in both; total "
             f"{report['total_us_a'] / 1000:,.2f} -> {report['total_us_b'] / 1000:,.2f} ms")
    console.print(_diff_table(title, report["diff"], report["a"], report["b"], console))


def imported(document: ImportDocument, console: Console = out) -> None:
    """``import TRACE``: the run a trace was stored as."""
    mode = document["modes"][0]
    what = "GPU time" if document["device"]["kind"] == "cuda" else "CPU op time (self)"
    console.print(f"stored {document['source_trace']} as run {document['run_id']}: {document['kernels']} kernels, "
                  f"{mode['kernel_ms']:,.2f} ms of {what} on {document['device']['name']}", highlight=False)
