"""The overhead measurement's document: what ``overhead --json`` prints and the store keeps as the
run's summary (times in ms, memory in bytes, ratios as treatment over baseline; its type is
detprof.documents.OverheadDocument)."""

from __future__ import annotations

from dataclasses import asdict

from detprof.backend import backend_for
from detprof.documents import DOCUMENT_VERSION, ModeFigures, OverheadDocument
from detprof.runner.outcomes import ModeSummary, OverheadResult
from detprof.stats import verdict


def summary_document(result: OverheadResult, run_id: int | None = None) -> OverheadDocument:
    """The JSON document of a measurement (what ``overhead --json`` prints). Times in ms, memory in bytes."""
    config = result.config
    ratio, kernel = result.ratio, result.kernel_ratio
    env = next((j.environment for j in result.jobs if j.environment), {})
    labels = [m.mode for m in result.modes]
    return {
        "document_version": DOCUMENT_VERSION,
        "run_id": run_id,
        "created_at": result.created_at,
        "partial": result.partial,
        "arch": config.workload.arch,
        "framework": config.framework,
        "device": {"kind": result.device_kind, "name": result.device_name, "gpu_index": config.gpu_index,
                   "gpu_uuid": config.gpu_uuid},
        "workload": config.workload.as_dict(),
        "protocol": asdict(config.protocol),
        "verdict": verdict(ratio, labels[0], labels[1]),
        "takeaway": takeaway(result),
        "part_of": config.part_of,
        "modes": [_mode_figures(m) for m in result.modes],
        "ratio": ratio.ratio if ratio else None,
        "ratio_ci": [ratio.low, ratio.high] if ratio and ratio.has_ci else None,
        "ratio_ci_reason": None if ratio and ratio.has_ci else (ratio.reason if ratio else "no complete pair of jobs"),
        "ratio_ci_method": ratio.method if ratio else None,
        "ratio_pairs": ratio.pairs if ratio else 0,
        "precision": asdict(result.precision),
        "kernel_ratio": kernel.ratio if kernel else None,
        "kernel_ratio_ci": [kernel.low, kernel.high] if kernel and kernel.has_ci else None,
        "kernel_ratio_ci_reason": None if kernel and kernel.has_ci else (
            kernel.reason if kernel else "no pair with both jobs profiled"),
        "kernel_ratio_pairs": kernel.pairs if kernel else 0,
        "kernel_times_reliable": None if not kernel else result.kernel_times_note is None,
        "kernel_times_note": result.kernel_times_note,
        "memory_ratio": result.memory_ratio,
        "noisy": any(bool(m.noisy) for m in result.modes),
        "expected_nondeterministic_ops": backend_for(config.framework).expected_nondeterministic_ops(config.workload),
        "failed_jobs": [{"mode": j.spec.mode, "repeat": j.spec.repeat, "status": j.status, "error": j.error}
                        for j in result.jobs if not j.ok],
        "environment": env,
        "command": result.command,
        "trace_dir": result.trace_dir,
    }


def _mode_figures(m: ModeSummary) -> ModeFigures:
    """One mode's part of the document (``attention_backends`` only where attention was observed)."""
    figures: ModeFigures = {
        "mode": m.mode, "step_ms": m.step_ms, "step_ms_iqr": m.step_ms_iqr, "noisy": m.noisy,
        "kernel_ms": m.kernel_ms, "kernel_ms_reason": m.kernel_ms_reason, "kernel_coverage": m.kernel_coverage,
        "kernel_jobs": m.kernel_jobs, "profiler_slowdown": m.profiler_slowdown,
        "peak_mem_bytes": m.peak_mem_bytes, "peak_mem_warmup_bytes": m.peak_mem_warmup_bytes,
        "peak_mem_kind": m.peak_mem_kind, "repeats_ok": m.repeats_ok, "repeats_failed": m.repeats_failed,
        "determinism": m.determinism, "bitwise_identical_across_repeats": m.bitwise_identical_across_repeats,
        "distinct_state_hashes": m.distinct_state_hashes, "nondeterministic_ops": m.nondeterministic_ops,
        "nondeterministic_kernels": m.nondeterministic_kernels, "throttled": m.throttled, "toggles": m.toggles}
    if m.attention_backends:
        figures["attention_backends"] = m.attention_backends
    return figures


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def takeaway(result: OverheadResult) -> str:
    """One sentence on what the run found: the step-time cost of the second mode as far as its CI
    resolves it (an upper bound when it resolves no difference), then whether each mode's repeats
    trained bit-identically, which is what a mode that costs nothing still has to show."""
    ratio = result.ratio
    where = "this CPU" if result.device_kind == "cpu" else result.device_name
    arch, (base, treated) = result.config.workload.arch, (m.mode for m in result.modes)
    if ratio is None or ratio.low is None or ratio.high is None:
        reason = "every job of a mode failed" if ratio is None else ratio.reason
        return f"Takeaway: no conclusion on {where} yet ({reason})."
    if ratio.low > 1.0:
        cost = (f"{treated} made {arch}'s training step {_percent(ratio.ratio - 1)} slower than {base} on {where} "
                f"(95% CI {_percent(ratio.low - 1)} to {_percent(ratio.high - 1)})")
    elif ratio.high < 1.0:
        cost = (f"{treated} made {arch}'s training step {_percent(1 - ratio.ratio)} faster than {base} on {where} "
                f"(95% CI {_percent(1 - ratio.high)} to {_percent(1 - ratio.low)})")
    else:
        cost = (f"{treated} costs {arch} at most {_percent(ratio.high - 1)} in step time over {base} on {where} "
                f"(the 95% CI's upper end; no difference was resolved)")
    return f"Takeaway: {cost}{_repeats_clause(result.modes)}."


def _repeats_clause(modes: list[ModeSummary]) -> str:
    """How the modes' repeats compared, as the end of the takeaway ("" when too few repeats)."""
    if len({m.mode for m in modes}) < 2:
        return ""
    same = [m for m in modes if m.bitwise_identical_across_repeats]
    differ = [m for m in modes if m.bitwise_identical_across_repeats is False]
    base, treated = modes
    if len(same) == 2:
        return (f", and both modes' processes trained bit-identically ({base.repeats_ok} and {treated.repeats_ok} "
                f"repeats), so here {base.mode} training already repeated itself")
    if same == [treated]:
        return f", and only {treated.mode}'s processes trained bit-identically ({base.mode}'s differed)"
    if treated in differ:
        return (f", but {treated.mode}'s processes did not train bit-identically: `detprof check` and "
                "`detprof audit` find the op")
    return ""
