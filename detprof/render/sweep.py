"""Sweep documents for people: a sweep's jobs and their ratios, and a Ray placement probe."""

from __future__ import annotations

from rich.console import Console

from detprof.documents import ProbeDocument, SweepDocument
from detprof.render.console import out
from detprof.render.tables import fmt, grid, interval, kernel_cell


def sweep(d: SweepDocument, console: Console = out) -> None:
    """A sweep document (``sweep --json``, ``sweep --status --json``)."""
    rows = []
    for j in d["jobs"]:
        state = j["status"] + (" now" if j["ran"] and j["status"] == "done" else "")
        rows.append([j["arch"] + (f" k{j['kernel_size']}" if j["kernel_size"] is not None else ""),
                     j["device_name"] or j["gpu"], f"{j['modes'][1]}/{j['modes'][0]}", state, fmt(j["ratio"], 3),
                     interval(j["ratio_ci"]), kernel_cell(j["kernel_ratio"], j.get("kernel_times_reliable")),
                     "—" if j["run_id"] is None else str(j["run_id"])])
    c = d["counts"]
    console.print(grid(f"sweep {d['sweep']} ({d['cluster']}): {c['done']} done, {c['failed']} failed, "
                       f"{c['left'] + c['running']} left; {c['ran_now']} run now",
                       ["job", "device", "ratio of", "status", "ratio", "95% CI", "kernel ratio", "run"], rows,
                       text={0, 1, 2, 3}, console=console))
    for j in d["jobs"]:
        if j["status"] == "failed":
            console.print(f"failed: {j['label']}: {j['error']}", highlight=False, markup=False, soft_wrap=True)


def probes(d: ProbeDocument, console: Console = out) -> None:
    """A placement probe document (``sweep --probe --json``)."""
    rows = [[p["gpu"], p["node"], str(p["cuda_visible_devices"] or "—"), ", ".join(p["gpus_seen"]) or "none",
             {True: "yes", False: "NO", None: "unknown (no NVML there)"}[p["ok"]]] for p in d["probes"]]
    console.print(grid("placement probe: where each GPU type's jobs land", ["GPU type", "node",
                       "CUDA_VISIBLE_DEVICES", "GPUs the task sees", "matches"], rows, text={0, 1, 2, 3, 4},
                       console=console))


def sweep_start(name: str, plan: str, where: str, console: Console = out) -> None:
    """The line a sweep starts with: its plan and where it runs."""
    console.print(f"sweep {name}: {plan} {where}; stored jobs are skipped", highlight=False)
