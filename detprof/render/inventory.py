"""Inventory documents for people: stored runs, the GPUs here, the model zoo, a merge, and a
written report."""

from __future__ import annotations

from rich.console import Console

from detprof.documents import GpusDocument, MergeDocument, ReportDocument, RunsDocument, ZooRow
from detprof.render.console import out, shown
from detprof.render.tables import fmt, grid, interval, kernel_cell, mib


def runs(d: RunsDocument, console: Console = out) -> None:
    """A runs document (``runs --json``): one row per stored run, newest first."""
    rows = d["runs"]
    if not rows:
        console.print("no runs yet" if not d["skipped"] else "no readable runs")
        return
    cells = []
    for r in rows:
        size = r.get("kernel_size")
        arch = r["arch"] + ("" if size is None or size != size else f" k{int(size)}")
        verdict = r.get("verdict")  # pandas turns a missing one into NaN, which is truthy
        modes = (f"{r['kind']}: {verdict}" if isinstance(verdict, str) and verdict else r["modes"]) + \
            (" (partial)" if r.get("partial") else "")
        cells.append([str(r["run_id"]), r["created_at"][5:16].replace("T", " "), arch, r["device"], modes,
                      fmt(r["ratio"], 3), interval(r["ratio_ci"]),
                      kernel_cell(r["kernel_ratio"], r.get("kernel_times_reliable"))])
    console.print(grid("runs (created: month-day, UTC; --json has the full time)",
                       ["id", "created", "arch", "device", "modes", "ratio", "95% CI", "kernel ratio"], cells,
                       text={2, 3, 4}, console=console))


def gpus(d: GpusDocument, console: Console = out) -> None:
    """A GPUs document (``gpus --json``): what NVML sees."""
    devices = d["gpus"]
    if not devices:
        console.print("no NVIDIA GPU found (NVML unavailable or no devices); measurements run on the CPU")
        return
    rows = [[str(g["index"]), g["name"], g.get("uuid") or "—", g.get("driver") or "—", mib(g.get("memory_total_bytes")),
             fmt(g.get("sm_clock_max_mhz"), 0, " MHz"), fmt(g.get("temperature_c"), 0, " °C"),
             str(g.get("cuda_cores") or "—")] for g in devices]
    console.print(grid("GPUs (index: as --gpu and cuda:N number them here)", ["index", "name", "UUID", "driver",
                       "memory", "max SM clock", "temperature", "CUDA cores"], rows, text={1, 2, 3}, console=console))


def _input(shape: list[int]) -> str:
    """An arch's input: C x H x W for images, N tokens for a language model."""
    return f"{shape[0]} tokens" if len(shape) == 1 else "x".join(map(str, shape))


def _zoo_pytorch(rows: list[ZooRow], console: Console) -> None:
    notes = [(r["arch"], r["notes"]) for r in rows if r["notes"]]
    cells = [[str(r["arch"]) + (f" [{[a for a, _ in notes].index(r['arch']) + 1}]" if r["notes"] else ""),
              f"{r['params']:,}", _input(r["input"]), str(r["num_classes"]) if r["num_classes"] else "— (noise)",
              " ".join(r["options"])] for r in rows]
    console.print(grid("model zoo (PyTorch)", ["arch", "params", "input", "classes or vocabulary", "options"], cells,
                       text={0, 2, 3, 4}, console=console))
    for number, (arch, note) in enumerate(notes, start=1):
        console.print(f"[{number}] {arch}: {note}", highlight=False, markup=False)


def _zoo_keras(rows: list[ZooRow], console: Console) -> None:
    notes = sorted({str(r["notes"]) for r in rows if r["notes"]})
    cells = [[str(r["arch"]) + (f" ({chr(97 + notes.index(str(r['notes'])))})" if r["notes"] else ""),
              f"{r['params']:,}", f"{r['trainable_params']:,}", "x".join(map(str, r["input"])), str(r["keras"])]
             for r in rows]
    console.print(grid("model zoo (TensorFlow, --framework tf; Keras' own counts)",
                       ["arch", "params", "trainable", "input (C,H,W)", "Keras model"], cells, text={0, 4},
                       console=console))
    for number, note in enumerate(notes):
        console.print(f"({chr(97 + number)}) {note}", highlight=False, markup=False)


ZOO_TABLES = {"pytorch": _zoo_pytorch, "tensorflow": _zoo_keras}  # by each row's framework


def zoo(rows: list[ZooRow], console: Console = out) -> None:
    """The zoo document (``zoo --json``, a list of rows): one table per framework."""
    for framework, table in ZOO_TABLES.items():
        chosen = [r for r in rows if r["framework"] == framework]
        if chosen:
            table(chosen, console)


def merged(c: MergeDocument, source: str = "the other store", console: Console = out) -> None:
    """A merge document (``db merge --json``): what came in from ``source`` and what was already here."""
    skipped = f", {c['stability_skipped']} not merged (files elsewhere)" if c["stability_skipped"] else ""
    console.print(f"merged {source}: {c['runs_added']} runs added, {c['runs_present']} already here; sweep jobs "
                  f"{c['sweep_jobs_added']} added, {c['sweep_jobs_completed']} completed; stability runs "
                  f"{c['stability_added']} added, {c['stability_present']} already here{skipped}; "
                  f"{c['files_copied']} files copied", highlight=False, soft_wrap=True, markup=False)
    for sentence in c["dropped"]:
        console.print(f"not copied: {shown(sentence)}", highlight=False, soft_wrap=True, markup=False)


def report_written(d: ReportDocument, console: Console = out) -> None:
    """A report document (``report --json``): where the HTML file went and what it drew."""
    from detprof.report.sections import SHORT_NAMES

    def named(state: str) -> str:
        return ", ".join(SHORT_NAMES.get(key, key) for key, value in d["sections"].items() if value == state)

    runs = len(d["runs"])
    line = f"wrote {d['out']} ({d['bytes'] / 2**20:.1f} MiB, {runs} run{'s' * (runs != 1)})"
    if named("drawn"):
        line += f"; drawn: {named('drawn')}"
    if named("no data"):
        line += f"; no runs for these yet (the page says which command fills each): {named('no data')}"
    console.print(line, highlight=False, soft_wrap=True)
