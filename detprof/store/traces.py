"""The trace folders beside a store: one per measurement, kept once a stored (or pending) run refers
to it, removed when its measurement failed or its process was killed before anything was stored."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from detprof.process.host import process_alive
from detprof.store.db import ResultStore

TRACE_OWNER = ".measuring"  # in a trace folder whose run is not stored yet: the measuring process's pid


def remove_abandoned_traces(traces: Path) -> list[Path]:
    """Delete trace folders of measurements that never got stored (their process was killed);
    returns what was removed. A folder still being measured into, or already stored, stays."""
    removed = []
    for owner in traces.glob(f"*/{TRACE_OWNER}"):
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue
        if not process_alive(pid):
            shutil.rmtree(owner.parent, ignore_errors=True)
            removed.append(owner.parent)
    return removed


@contextmanager
def trace_folder(store: ResultStore) -> Iterator[Path]:
    """A new folder for one measurement's traces, beside the database. It is removed if the block
    raises before ``release_trace_folder`` marked it as kept (a stored run, partial or whole,
    refers to it); otherwise it stays. One abandoned by a killed process before any of its run was
    stored is removed by the next measurement into the same store."""
    traces = store.path.parent / "traces"
    remove_abandoned_traces(traces)
    trace_dir = traces / uuid.uuid4().hex[:12]
    trace_dir.mkdir(parents=True)
    (trace_dir / TRACE_OWNER).write_text(str(os.getpid()))
    try:
        yield trace_dir
    except BaseException:
        if (trace_dir / TRACE_OWNER).exists():  # not released: no stored run refers to it
            shutil.rmtree(trace_dir, ignore_errors=True)
        raise


def release_trace_folder(trace_dir: Path) -> None:
    """Mark a trace folder as belonging to a stored (or pending) run: it is never cleaned up."""
    (trace_dir / TRACE_OWNER).unlink(missing_ok=True)
