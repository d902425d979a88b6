"""``detprof import``: store any PyTorch profiler trace as a run, so that ``kernels --run``, ``diff``
and the report can use it beside measured runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detprof.backend import DEFAULT_FRAMEWORK
from detprof.documents import DOCUMENT_VERSION, ImportDocument
from detprof.kernels import kernel_table, load_trace
from detprof.kernels.trace import DEFAULT_MAX_TRACE_MB, count_profiler_steps
from detprof.store import StoreLike, open_store
from detprof.store.schema import RunRecord

API_COMMAND = "Python API: detprof.trace_import.import_trace"


def import_trace(path: str, db: StoreLike = None, label: str = "trace", arch: str | None = None,
                 scope: str = "steps", command: str = API_COMMAND,
                 max_trace_mb: float = DEFAULT_MAX_TRACE_MB) -> ImportDocument:
    """Store the trace's per-kernel table as a run (kind ``trace``); returns its summary document.

    The run has one mode, ``label``. Its protocol records the trace's profiler steps
    (``profile_steps``, ``steps_known``): kernel time per step only where the trace says how many
    steps it holds; otherwise the total is for the whole trace.
    """
    activities = load_trace(path, scope, max_trace_mb=max_trace_mb)
    steps = count_profiler_steps(path, max_trace_mb)
    table = kernel_table(activities.events)
    device_kind = "cuda" if activities.kind == "gpu" else "cpu"
    device_name = activities.device_name or ("unknown GPU" if device_kind == "cuda" else "cpu")
    kernel_ms = float(table["total_us"].sum()) / 1000.0
    summary: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "arch": arch or Path(path).name.split(".")[0], "framework": DEFAULT_FRAMEWORK,
        "device": {"kind": device_kind, "name": device_name}, "source_trace": str(Path(path).resolve()),
        "scope": scope, "protocol": {"profile_steps": steps or 1, "steps_known": steps > 0},
        "modes": [{"mode": label, "step_ms": None, "step_ms_iqr": None, "kernel_ms": kernel_ms,
                   "peak_mem_bytes": None, "determinism": "unknown"}],
        "ratio": None, "ratio_ci": None, "kernel_ratio": None,
        "command": command,
    }
    run: RunRecord = {
        "created_at": summary["created_at"], "kind": "trace", "arch": summary["arch"],
        "framework": DEFAULT_FRAMEWORK, "device_kind": device_kind, "device_name": device_name, "modes": [label],
        "command": summary["command"],
        "config": {"trace": str(path), "scope": scope}, "environment": {}, "summary": summary}
    with open_store(db, create=True) as store:
        store.store_pending()
        run_id = store.save_run(run, [], {label: table})
    document: ImportDocument = {"document_version": DOCUMENT_VERSION, **summary,  # type: ignore[typeddict-item]
                                "run_id": run_id, "kernels": int(len(table))}
    return document
