"""The overhead measurement's document: what ``overhead --json`` prints and the store keeps as the
run's summary (times in ms, memory in bytes, ratios as treatment over baseline; its type is
detprof.documents.OverheadDocument)."""

from __future__ import annotations

from dataclasses import asdict

from detprof.backends import backend_for
from detprof.documents import DOCUMENT_VERSION, ModeFigures, OverheadDocument
from detprof.runner.launcher import ModeSummary, OverheadResult
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
        "kernel_jobs": m.kernel_jobs,
        "peak_mem_bytes": m.peak_mem_bytes, "peak_mem_warmup_bytes": m.peak_mem_warmup_bytes,
        "peak_mem_kind": m.peak_mem_kind, "repeats_ok": m.repeats_ok, "repeats_failed": m.repeats_failed,
        "determinism": m.determinism, "bitwise_identical_across_repeats": m.bitwise_identical_across_repeats,
        "distinct_state_hashes": m.distinct_state_hashes, "nondeterministic_ops": m.nondeterministic_ops,
        "nondeterministic_kernels": m.nondeterministic_kernels, "throttled": m.throttled, "toggles": m.toggles}
    if m.attention_backends:
        figures["attention_backends"] = m.attention_backends
    return figures
