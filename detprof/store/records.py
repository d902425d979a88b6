"""What the store keeps of an overhead measurement: its run, job and kernel records, from the
launcher's result, as ``ResultStore.save_run`` takes them."""

from __future__ import annotations

from typing import Any

import pandas as pd

from detprof.runner.outcomes import JobOutcome, OverheadResult
from detprof.runner.summary import summary_document
from detprof.store.db import ResultStore
from detprof.store.schema import JobRecord, RunRecord


def _job_record(job: JobOutcome) -> JobRecord:
    return {"index": job.spec.index, "side": job.spec.side, "mode": job.spec.mode, "repeat": job.spec.repeat,
            "status": job.status, "error": job.error, "peak_mem_bytes": job.peak_mem_bytes,
            "peak_mem_warmup_bytes": job.peak_mem_warmup_bytes, "peak_mem_kind": job.peak_mem_kind,
            "toggles": job.spec.toggles, "applied_toggles": job.applied_toggles,
            "nondeterministic_ops": job.nondeterministic_ops, "gpu_monitor": job.gpu_monitor,
            "trace_path": job.trace_path, "wall_s": job.wall_s, "step_ms": job.step_ms,
            "state_sha256": job.state_sha256}


def run_records(result: OverheadResult, extra_config: dict[str, Any] | None = None
                ) -> tuple[RunRecord, list[JobRecord], dict[str, pd.DataFrame]]:
    """What the store keeps of a measurement: (run, jobs, kernel tables), as ResultStore.save_run
    takes them. ``extra_config`` is added to the run's stored configuration (a sweep's job key)."""
    document = summary_document(result)
    run: RunRecord = {
        "created_at": result.created_at, "kind": "overhead", "arch": document["arch"],
        "framework": document["framework"], "device_kind": result.device_kind, "device_name": result.device_name,
        "modes": list(result.config.modes), "command": result.command,
        "config": {**result.config.as_dict(), **(extra_config or {})},
        "environment": document["environment"], "summary": document}
    return run, [_job_record(j) for j in result.jobs], result.kernel_tables


def store_result(store: ResultStore, result: OverheadResult) -> int:
    """Save a measurement in one transaction; returns the new run id."""
    run_id = store.save_run(*run_records(result))
    assert run_id is not None  # only a sweep job's run can be refused as a duplicate
    return run_id
