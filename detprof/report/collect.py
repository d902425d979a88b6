"""What the report draws, read from the results store into plain data (no drawing here)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from detprof.backend import DEFAULT_FRAMEWORK, backend_for
from detprof.check.verdict_kinds import VERDICT_KINDS, VERDICTS
from detprof.kernels import diff_tables, load_catalog
from detprof.kernels.catalog import catalog_path
from detprof.store import ResultStore, StoreError, StoreLike, open_store

TOP_KERNELS = 20
DIFF_ROWS = 25


@dataclass
class KernelComparison:
    """Two kernel tables to set side by side (Figure 8 and the diff table). Times in µs."""

    run_label: str
    labels: tuple[str, str]
    tables: tuple[pd.DataFrame, pd.DataFrame]
    diff: pd.DataFrame
    # Why these kernel times do not stand for the run's timed steps (its overhead run flagged them
    # unreliable), said beside Figure 8 and the diff; None when nothing is known against them.
    caveat: str | None = None


@dataclass
class ReportData:
    overhead: pd.DataFrame  # one row per overhead run: arch, kernel_size, device, ratio, ci, kernel_ratio, noisy
    comparison: KernelComparison | None
    environments: list[dict[str, Any]]
    paper: dict[str, Any]
    run_ids: list[int] = field(default_factory=list)
    stability: list[dict[str, Any]] = field(default_factory=list)  # experiments with their measures
    skipped: list[str] = field(default_factory=list)  # stored rows and files left out, one sentence each
    verdicts: list[dict[str, Any]] = field(default_factory=list)  # check, audit and advise runs (reproducibility)
    inference: list[dict[str, Any]] = field(default_factory=list)  # infer runs: run_id, kind, summary (oldest first)


INFERENCE_KINDS = ("inference", "inference-cost", "inference-mismatch")  # detprof infer's verdict kinds


def paper_reference() -> dict[str, Any]:
    """The paper's published overhead figures (kernels_db/paper_reference.json)."""
    path = catalog_path().parent / "paper_reference.json"
    return dict(json.loads(Path(path).read_text()))


OVERHEAD_COLUMNS = ["run_id", "arch", "kernel_size", "device", "device_kind", "framework", "series", "comparison",
                    "baseline", "treatment", "ratio", "ci_low", "ci_high", "kernel_ratio", "kernel_ci_low",
                    "kernel_ci_high", "kernel_reliable", "memory_ratio", "noisy", "aa_test", "partial", "part_of"]
def series_label(device: str, framework: str) -> str:
    """What one line or bar series of Figures 9a/9b stands for: the device, and the framework
    when it is not the default one (the paper's figures are PyTorch's)."""
    backend = backend_for(framework)
    return device if backend.name == DEFAULT_FRAMEWORK else f"{device}, {backend.label}"
MAIN_COMPARISON = "deterministic / default"  # what the paper's Figures 9a and 9b show


def _overhead_row(run_id: int, summary: dict[str, Any]) -> dict[str, Any]:
    modes = [m["mode"] for m in summary["modes"]]
    workload = summary.get("workload") or {}
    ci = summary.get("ratio_ci") or [None, None]
    kernel_ci = summary.get("kernel_ratio_ci") or [None, None]
    framework = summary.get("framework") or DEFAULT_FRAMEWORK
    return {"run_id": run_id, "arch": summary["arch"], "kernel_size": workload.get("kernel_size"),
            "device": summary["device"]["name"], "device_kind": summary["device"]["kind"], "framework": framework,
            "series": series_label(summary["device"]["name"], framework),
            "comparison": f"{modes[1]} / {modes[0]}", "baseline": modes[0], "treatment": modes[1],
            "ratio": summary.get("ratio"), "ci_low": ci[0], "ci_high": ci[1],
            "kernel_ratio": summary.get("kernel_ratio"), "kernel_ci_low": kernel_ci[0], "kernel_ci_high": kernel_ci[1],
            # Runs stored before the coverage check have no verdict on their kernel times: not vouched for.
            "kernel_reliable": summary.get("kernel_times_reliable") is True,
            "memory_ratio": summary.get("memory_ratio"), "noisy": bool(summary.get("noisy")),
            "aa_test": modes[0].split("#")[0] == modes[1].split("#")[0], "partial": bool(summary.get("partial")),
            "part_of": part_of(summary)}


def part_of(summary: dict[str, Any]) -> str | None:
    """The command a stored overhead run was a step of: its ``part_of``, or for a run stored before
    that field, "ablation" when its command line asked for one."""
    if "part_of" in summary:
        return summary["part_of"]  # type: ignore[no-any-return]
    return "ablation" if "--ablate" in str(summary.get("command", "")).split() else None


def _verdict_version(summary: dict[str, Any]) -> str | None:
    """The framework a stored check or audit ran with, as its runs reported it ("torch 2.13.0+cpu");
    None for a verdict stored before they reported it, or one (advise) whose runs are stored apart."""
    sides = summary.get("runs") or []
    versions = sorted({side.get("version") for side in sides if side.get("version")})
    return ", ".join(versions) if versions else summary.get("version") or None


def _environment(run_id: int, kind: str, summary: dict[str, Any]) -> dict[str, Any]:
    env = summary.get("environment") or {}
    return {
        "versions": _verdict_version(summary),
        "run_id": run_id, "kind": kind, "arch": summary["arch"], "device": summary["device"]["name"],
        "created_at": summary.get("created_at"), "framework": summary.get("framework") or DEFAULT_FRAMEWORK,
        "torch": env.get("torch"), "tensorflow": env.get("tensorflow"), "cuda": env.get("cuda"),
        "cudnn": env.get("cudnn"), "threads": env.get("threads"), "cpu": env.get("cpu"),
        "toggles": {m["mode"]: m.get("toggles") for m in summary["modes"]},
        "throttled": {m["mode"]: m.get("throttled") for m in summary["modes"]},
        "determinism": {m["mode"]: m.get("determinism") for m in summary["modes"]},
        "command": summary.get("command", ""), "source_trace": summary.get("source_trace"),
    }


# Figure 8 is the paper's default against deterministic comparison: runs of exactly those two modes
# come first, then other comparisons of the full deterministic mode (e.g. without its NaN fill),
# then any two modes (an ablation step, an advise candidate).
def _preference(modes: list[str]) -> int:
    if modes == ["default", "deterministic"]:
        return 0
    return 1 if modes[0] == "default" and modes[1].startswith("deterministic") else 2


def _comparison(store: ResultStore, runs: list[tuple[int, str, dict[str, Any]]],
                kernels_run: int | None = None) -> KernelComparison | None:
    """Figure 8's run: ``kernels_run`` when given, else the newest default vs deterministic run with
    kernels in both modes (then the newest other deterministic comparison, then any two modes);
    else the two newest single-mode (imported) runs."""
    candidates = []
    for run_id, _, summary in reversed(runs):
        modes = store.kernel_modes(run_id)
        if len(modes) == 2 and (kernels_run is None or run_id == kernels_run):
            unreliable = summary.get("kernel_times_reliable") is False
            step_of_another = part_of(summary) is not None  # an advise candidate, an ablation switch
            candidates.append(((unreliable, _preference(modes), step_of_another), run_id, summary, modes))
    if candidates:
        # a run whose kernel times stand for its timed steps first, then by preference, then a plain
        # comparison before a step of another command, newest among equals
        _, run_id, summary, modes = min(candidates, key=lambda c: c[0])
        a, b = (store.kernels(run_id, m) for m in modes)
        caveat = None
        if summary.get("kernel_times_reliable") is False:
            note = summary.get("kernel_times_note") or "no reason stored"
            caveat = (f"Run {run_id}'s kernel times are flagged unreliable ({note}): the kernels and their "
                      "differences below are what its profiled steps recorded, not a measure of what the mode "
                      "costs; differences may be noise.")
        return KernelComparison(f"run {run_id} ({summary['arch']}, {summary['device']['name']})",
                                (modes[0], modes[1]), (a, b), diff_tables(a, b), caveat)
    if kernels_run is not None:
        raise StoreError(f"--kernels-run {kernels_run} is not accepted: that run has no kernels in two modes; "
                         "use a run listed by `detprof runs` whose profiled pass ran in both modes")
    with_modes = [(run_id, store.kernel_modes(run_id)) for run_id, _, _ in runs]
    singles = [(run_id, modes[0]) for run_id, modes in with_modes if len(modes) == 1]
    if len(singles) >= 2:
        (id_a, mode_a), (id_b, mode_b) = singles[-2], singles[-1]
        a, b = store.kernels(id_a, mode_a), store.kernels(id_b, mode_b)
        return KernelComparison(f"runs {id_a} and {id_b}", (f"{id_a}:{mode_a}", f"{id_b}:{mode_b}"), (a, b),
                                diff_tables(a, b))
    return None


def config_label(experiment: dict[str, Any]) -> str:
    """A short name for an experiment's configuration: task, network, BN, batch size when not the default."""
    recipe = experiment["recipe"]
    label = f"{experiment['task']} {recipe.get('arch', 'small-cnn')}" + (" +BN" if recipe.get("batch_norm") else "")
    return label + (f" batch {recipe['batch_size']}" if experiment["variant"] == "order-only" else "")


def _stability(store: ResultStore, skipped: list[str]) -> list[dict[str, Any]]:
    """The stability experiments with at least two runs and their measures; one whose stored files
    are missing or damaged is left out and named in ``skipped``, so the rest of the report stands."""
    from detprof.stability.stored import StabilityFileError, experiment_measures

    found = []
    for experiment in store.stability_experiments():
        if experiment["runs"] < 2:
            continue
        label = config_label(experiment)
        try:
            measures = experiment_measures(store, experiment)
        except StabilityFileError as damage:
            skipped.append(f"stability experiment {experiment['experiment']} ({label}): {damage}")
            continue
        if measures is None:
            skipped.append(f"stability experiment {experiment['experiment']} ({label}): its labels file "
                           f"{str(Path(experiment['directory']) / 'test_labels.npy')!r} is missing")
            continue
        found.append({**experiment, "label": label, "measures": measures})
    return found


def verdict_row(run_id: int, kind: str, summary: dict[str, Any]) -> dict[str, Any]:
    """One check, audit or advise run as the Reproducibility section shows it: run, kind, arch,
    device, modes, passed, verdict and ``findings`` (the first divergence, the ops to blame with
    their module and pass, or the recommendation), in words (detprof.check.verdict_kinds)."""
    return {"run_id": run_id, "kind": kind, "arch": summary["arch"], "device": summary["device"]["name"],
            "modes": [m["mode"] for m in summary["modes"]], "passed": bool(summary.get("passed")),
            "verdict": summary.get("verdict", ""), "findings": VERDICTS[kind].findings(summary)}


def collect(db: StoreLike = None, run_ids: list[int] | None = None, kernels_run: int | None = None) -> ReportData:
    """Everything the report shows, from the store (all runs, or only ``run_ids``); Figure 8 shows
    ``kernels_run`` when given (see ``_comparison``)."""
    load_catalog()  # fail early on a broken catalog, before any drawing
    with open_store(db) as store:
        skipped: list[str] = []
        stability = _stability(store, skipped) if not run_ids else []
        wanted = run_ids or list(reversed(store.list_runs()["run_id"].tolist()))
        skipped.extend(store.damaged)
        runs = []
        for run_id in wanted:
            summary = store.run_summary(int(run_id))
            kind = store.run_kind(int(run_id))
            runs.append((int(run_id), kind, summary))
        if not runs and not stability:
            raise StoreError(f"no runs yet in {str(store.path)!r}; run `detprof overhead`, `detprof import` or "
                             "`detprof stability` first")
        rows = [_overhead_row(run_id, s) for run_id, kind, s in runs if kind == "overhead"]
        runs_with_kernels = [r for r in runs if r[1] not in VERDICT_KINDS]
        overhead = pd.DataFrame(rows, columns=OVERHEAD_COLUMNS)
        return ReportData(overhead=overhead, comparison=_comparison(store, runs_with_kernels, kernels_run),
                          environments=[_environment(run_id, kind, s) for run_id, kind, s in runs],
                          paper=paper_reference(), run_ids=[r[0] for r in runs], stability=stability,
                          skipped=skipped, verdicts=[verdict_row(run_id, kind, s) for run_id, kind, s in runs
                                                     if kind in VERDICT_KINDS],
                          inference=[{"run_id": run_id, "kind": kind, "summary": s} for run_id, kind, s in
                                     sorted(runs, key=lambda r: r[0]) if kind in INFERENCE_KINDS])

